#pragma once
// The commit this build was made from (`git describe --always --dirty`, refreshed at every build by
// cmake/git_commit.cmake): --version prints it and benchmark JSON records it beside the figures.
extern const char* const bytelm_git_commit;
