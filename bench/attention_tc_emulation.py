"""A line-by-line fp64 emulation of the tensor-core kernels of src/layers/attention.cu (forward, dq, dk/dv), with
the per-lane semantics of ldmatrix(.trans) and mma.sync.m16n8k16 as the PTX ISA defines them, against a direct
causal attention. It checks the fragment layouts, masks and tile loops of the kernels without a GPU (no bf16
rounding, no timing). Pure Python, a few seconds: python3 bench/attention_tc_emulation.py
Keep it in step with attention.cu when the kernels change.
"""
import math
import random
random.seed(0)
def zeros(r,c): return [[0.0]*c for _ in range(r)]
def randn(r,c): return [[random.gauss(0,1) for _ in range(c)] for _ in range(r)]
def matmul(A,B): return [[sum(A[i][k]*B[k][j] for k in range(len(B))) for j in range(len(B[0]))] for i in range(len(A))]
def T(A): return [list(x) for x in zip(*A)]
def maxdiff(A,B): return max(abs(a-b) for ra,rb in zip(A,B) for a,b in zip(ra,rb))

def ldmatrix_x4(smem, addr, trans=False):
    # addr[lane] = flat element index of the row start lane provides; returns regs[lane][m] = (lo, hi)
    regs = [[None]*4 for _ in range(32)]
    for L in range(32):
        for m in range(4):
            if not trans:
                row = addr[8*m + L//4]
                regs[L][m] = (smem[row + 2*(L%4)], smem[row + 2*(L%4) + 1])
            else:
                regs[L][m] = (smem[addr[8*m + 2*(L%4)] + L//4], smem[addr[8*m + 2*(L%4) + 1] + L//4])
    return regs

def mma(c, a, b0, b1):
    # c[lane] 4 floats, a[lane] 4 pairs, b0/b1[lane] pairs
    A = zeros(16,16); B = zeros(16,8); C = zeros(16,8)
    for L in range(32):
        g, t = L//4, L%4
        for i,(r,cc) in enumerate([(g,2*t),(g+8,2*t),(g,2*t+8),(g+8,2*t+8)]):
            A[r][cc], A[r][cc+1] = a[L][i]
        B[2*t][g], B[2*t+1][g] = b0[L]; B[2*t+8][g], B[2*t+9][g] = b1[L]
        C[g][2*t],C[g][2*t+1],C[g+8][2*t],C[g+8][2*t+1] = c[L]
    AB = matmul(A,B); D = [[AB[i][j]+C[i][j] for j in range(8)] for i in range(16)]
    for L in range(32):
        g, t = L//4, L%4
        c[L] = [D[g][2*t],D[g][2*t+1],D[g+8][2*t],D[g+8][2*t+1]]

def rows_dot_rows(K, N, Ld, smem, a_off, b_off):
    c = [[[0.0]*4 for _ in range(N//8)] for _ in range(32)]  # c[lane][nt]
    for kk in range(K//16):
        af = ldmatrix_x4(smem, [a_off + (L%16)*Ld + kk*16 + (L//16)*8 for L in range(32)])
        for np_ in range(N//16):
            bf = ldmatrix_x4(smem, [b_off + (np_*16 + (L//16)*8 + L%8)*Ld + kk*16 + (L//8%2)*8 for L in range(32)])
            for which in range(2):
                cl = [c[L][2*np_+which] for L in range(32)]
                mma(cl, af, [bf[L][2*which] for L in range(32)], [bf[L][2*which+1] for L in range(32)])
                for L in range(32): c[L][2*np_+which] = cl[L]
    return c

def frag_times_rows(N, K, Ld, smem, p, m_off, acc):
    for kk in range(K//16):
        af = [[(p[L][2*kk][0],p[L][2*kk][1]),(p[L][2*kk][2],p[L][2*kk][3]),(p[L][2*kk+1][0],p[L][2*kk+1][1]),(p[L][2*kk+1][2],p[L][2*kk+1][3])] for L in range(32)]
        for np_ in range(N//16):
            bf = ldmatrix_x4(smem, [m_off + (kk*16 + (L//8%2)*8 + L%8)*Ld + np_*16 + (L//16)*8 for L in range(32)], trans=True)
            for which in range(2):
                cl = [acc[L][2*np_+which] for L in range(32)]
                mma(cl, af, [bf[L][2*which] for L in range(32)], [bf[L][2*which+1] for L in range(32)])
                for L in range(32): acc[L][2*np_+which] = cl[L]

def gather(c, rows, cols):
    out = zeros(16, cols)
    for L in range(32):
        g, t = L//4, L%4
        for nt in range(cols//8):
            out[g][nt*8+2*t], out[g][nt*8+2*t+1], out[g+8][nt*8+2*t], out[g+8][nt*8+2*t+1] = c[L][nt]
    return out

INF = float('inf')

def ref(q, k, v, scale):
    T = len(q); Dh = len(q[0]); o = []; lse = []
    for t in range(T):
        x = [scale*sum(a*b for a,b in zip(q[t],k[j])) for j in range(t+1)]
        m = max(x); z = sum(math.exp(y-m) for y in x)
        o.append([sum(math.exp(x[j]-m)/z*v[j][i] for j in range(t+1)) for i in range(Dh)]); lse.append(m+math.log(z))
    return o, lse

def ref_bwd(q,k,v,o,lse,dout,scale):
    T=len(q); Dh=len(q[0]); dq=zeros(T,Dh); dk=zeros(T,Dh); dv=zeros(T,Dh)
    delta=[sum(a*b for a,b in zip(dout[t],o[t])) for t in range(T)]
    for t in range(T):
        for j in range(t+1):
            p=math.exp(scale*sum(a*b for a,b in zip(q[t],k[j]))-lse[t]); dp=sum(a*b for a,b in zip(dout[t],v[j])); ds=p*(dp-delta[t])
            for i in range(Dh):
                dv[j][i]+=p*dout[t][i]; dk[j][i]+=scale*ds*q[t][i]; dq[t][i]+=scale*ds*k[j][i]
    return dq,dk,dv,delta

def tile(mat, r0, R, Ld, T):
    out=[0.0]*(R*Ld)
    for r in range(R):
        if r0+r<T: out[r*Ld:r*Ld+len(mat[0])]=mat[r0+r]
    return out

def store(acc, mul, r0, T, dst):
    for L in range(32):
        g,t=L//4,L%4
        for dt in range(len(acc[L])):
            for r in range(2):
                row=r0+g+8*r
                if row<T:
                    dst[row][dt*8+2*t]=acc[L][dt][2*r]*mul[L][r]; dst[row][dt*8+2*t+1]=acc[L][dt][2*r+1]*mul[L][r]

def forward(q,k,v,scale, Dh, Bq=64, Bk=64):
    T=len(q); Ld=Dh+8; o=[[float('nan')]*Dh for _ in range(T)]; lse=[float('nan')]*T
    sl=scale*1.4426950408889634
    for q0 in range(0,T,Bq):
        n_tiles=(min(T,q0+Bq)+Bk-1)//Bk
        sq=tile(q,q0,Bq,Ld,T)
        for warp in range(Bq//16):
            w0=q0+16*warp
            acc=[[[0.0]*4 for _ in range(Dh//8)] for _ in range(32)]; m=[[-INF,-INF] for _ in range(32)]; l=[[0.0,0.0] for _ in range(32)]
            for j in range(n_tiles):
                k0=j*Bk
                if not (k0<=w0+15): continue
                smem=sq+tile(k,k0,Bk,Ld,T)+tile(v,k0,Bk,Ld,T)
                s=rows_dot_rows(Dh,Bk,Ld,smem,16*warp*Ld,Bq*Ld)
                diagonal=k0+Bk-1>w0
                for r in range(2):
                    mx=[0]*32
                    for L in range(32):
                        row=w0+L//4; mxl=m[L][r]
                        for nt in range(Bk//8):
                            for e in range(2):
                                x=s[L][nt][2*r+e]*sl
                                if diagonal and k0+nt*8+2*(L%4)+e>row+8*r: x=-INF
                                s[L][nt][2*r+e]=x; mxl=max(mxl,x)
                        mx[L]=mxl
                    mx=[max(mx[(L//4)*4+i] for i in range(4)) for L in range(32)]
                    for L in range(32):
                        base=0.0 if mx[L]==-INF else mx[L]
                        corr=2**(m[L][r]-base) if m[L][r]!=-INF else 0.0
                        m[L][r]=mx[L]; sm=0.0
                        for nt in range(Bk//8):
                            for e in range(2):
                                x=s[L][nt][2*r+e]; p=0.0 if x==-INF else 2**(x-base); s[L][nt][2*r+e]=p; sm+=p
                        l[L][r]=l[L][r]*corr+sm
                        for dt in range(Dh//8): acc[L][dt][2*r]*=corr; acc[L][dt][2*r+1]*=corr
                frag_times_rows(Dh,Bk,Ld,smem,s,(Bq+Bk)*Ld,acc)
            inv=[[0,0] for _ in range(32)]
            for r in range(2):
                ls=[sum(l[(L//4)*4+i][r] for i in range(4)) for L in range(32)]
                for L in range(32):
                    inv[L][r]=1/ls[L]; t=w0+L//4+8*r
                    if L%4==0 and t<T: lse[t]=(m[L][r]+math.log2(ls[L]))*0.6931471805599453
            store(acc,inv,w0,T,o)
    return o,lse

def dq_kernel(q,k,v,dout,lse,delta,scale,Dh,Bq=64,Bk=64):
    T=len(q); Ld=Dh+8; dq=[[float('nan')]*Dh for _ in range(T)]; sl=scale*1.4426950408889634
    for q0 in range(0,T,Bq):
        n_tiles=(min(T,q0+Bq)+Bk-1)//Bk
        sq=tile(q,q0,Bq,Ld,T); sdo=tile(dout,q0,Bq,Ld,T)
        for warp in range(Bq//16):
            w0=q0+16*warp
            rl=[[ (lse[w0+L//4+8*r]*1.4426950408889634 if w0+L//4+8*r<T else 0.0) for r in range(2)] for L in range(32)]
            rd=[[ (delta[w0+L//4+8*r] if w0+L//4+8*r<T else 0.0) for r in range(2)] for L in range(32)]
            acc=[[[0.0]*4 for _ in range(Dh//8)] for _ in range(32)]
            for j in range(n_tiles):
                k0=j*Bk
                if not k0<=w0+15: continue
                smem=sq+sdo+tile(k,k0,Bk,Ld,T)+tile(v,k0,Bk,Ld,T)
                s=rows_dot_rows(Dh,Bk,Ld,smem,16*warp*Ld,2*Bq*Ld)
                dp=rows_dot_rows(Dh,Bk,Ld,smem,Bq*Ld+16*warp*Ld,(2*Bq+Bk)*Ld)
                diagonal=k0+Bk-1>w0
                for L in range(32):
                    row=w0+L//4
                    for nt in range(Bk//8):
                        for i in range(4):
                            r=i//2; key=k0+nt*8+2*(L%4)+i%2
                            p=2**min(s[L][nt][i]*sl-rl[L][r],1000)
                            if diagonal and key>row+8*r: p=0.0
                            s[L][nt][i]=p*(dp[L][nt][i]-rd[L][r])
                frag_times_rows(Dh,Bk,Ld,smem,s,2*Bq*Ld,acc)
            store(acc,[[scale,scale]]*32,w0,T,dq)
    return dq

def dkdv_kernel(q,k,v,dout,lse,delta,scale,Dh,Bk=64):
    Bq=32 if Dh==128 else 64
    T=len(q); Ld=Dh+8; dk=[[float('nan')]*Dh for _ in range(T)]; dv=[[float('nan')]*Dh for _ in range(T)]; sl=scale*1.4426950408889634
    for k0 in range(0,T,Bk):
        i0=k0//Bq; n_tiles=(T+Bq-1)//Bq
        sk=tile(k,k0,Bk,Ld,T); sv=tile(v,k0,Bk,Ld,T)
        for warp in range(Bk//16):
            kw=k0+16*warp
            dka=[[[0.0]*4 for _ in range(Dh//8)] for _ in range(32)]; dva=[[[0.0]*4 for _ in range(Dh//8)] for _ in range(32)]
            for i in range(i0,n_tiles):
                q0=i*Bq
                if not q0+Bq-1>=kw: continue
                smem=sk+sv+tile(q,q0,Bq,Ld,T)+tile(dout,q0,Bq,Ld,T)
                s_lse=[lse[q0+c]*1.4426950408889634 if q0+c<T else 0.0 for c in range(Bq)]
                s_dl=[delta[q0+c] if q0+c<T else 0.0 for c in range(Bq)]
                s=rows_dot_rows(Dh,Bq,Ld,smem,16*warp*Ld,2*Bk*Ld)
                dp=rows_dot_rows(Dh,Bq,Ld,smem,Bk*Ld+16*warp*Ld,(2*Bk+Bq)*Ld)
                edge=q0<kw+15 or q0+Bq>T
                for L in range(32):
                    key=kw+L//4
                    for nt in range(Bq//8):
                        for e in range(4):
                            c=nt*8+2*(L%4)+e%2; query=q0+c
                            p=2**min(s[L][nt][e]*sl-s_lse[c],1000)
                            if edge and (query<key+8*(e//2) or query>=T): p=0.0
                            s[L][nt][e]=p; dp[L][nt][e]=p*(dp[L][nt][e]-s_dl[c])
                frag_times_rows(Dh,Bq,Ld,smem,s,(2*Bk+Bq)*Ld,dva)
                frag_times_rows(Dh,Bq,Ld,smem,dp,2*Bk*Ld,dka)
            store(dka,[[scale,scale]]*32,kw,T,dk); store(dva,[[1,1]]*32,kw,T,dv)
    return dk,dv

def nans(A): return sum(1 for r in A for x in r if x!=x)
for T,Dh in [(37,64),(130,128),(129,64)]:
    random.seed(T)
    q=randn(T,Dh);k=randn(T,Dh);v=randn(T,Dh);dout=randn(T,Dh); scale=1/math.sqrt(Dh)
    o_r,l_r=ref(q,k,v,scale); o,l=forward(q,k,v,scale,Dh)
    print(T,Dh,'o',maxdiff(o,o_r),'lse',max(abs(a-b) for a,b in zip(l,l_r)))
    dq_r,dk_r,dv_r,delta=ref_bwd(q,k,v,o_r,l_r,dout,scale)
    dq=dq_kernel(q,k,v,dout,l_r,delta,scale,Dh); dk,dv=dkdv_kernel(q,k,v,dout,l_r,delta,scale,Dh)
    print(T,Dh,'dq',maxdiff(dq,dq_r),'dk',maxdiff(dk,dk_r),'dv',maxdiff(dv,dv_r))
    assert nans(o) + nans(dq) + nans(dk) + nans(dv) + nans([l]) == 0, 'an output element was never written'
    assert max(maxdiff(o,o_r), maxdiff(dq,dq_r), maxdiff(dk,dk_r), maxdiff(dv,dv_r)) < 1e-9, 'mismatch'
print('ok')
