// A C++ program using <ssm.h>: std::complex arrays go straight into the
// complex-valued functions (layout-compatible with C99 complex).
#include <ssm.h>
#include <complex>
#include <cstdio>
#include <vector>

int main()
{
    const int64_t n = 8;
    std::vector<std::complex<double>> lambda(n), Pt(n), Bt(n), V(n * n);
    if (ssm_hippo_nplr(SSM_LEGS, n, 1, lambda.data(), Pt.data(), Bt.data(),
                       V.data()) != SSM_OK)
        return 1;
    for (int64_t k = 0; k < n; k++)          // LegS NPLR: Re(lambda) = -1/2
        if (std::abs(lambda[k].real() + 0.5) > 1e-12)
            return 2;
    std::vector<std::complex<double>> s4d(4);
    if (ssm_s4d_lambda(SSM_S4D_LIN, 4, s4d.data()) != SSM_OK ||
        std::abs(s4d[1] - std::complex<double>(-0.5, 3.141592653589793)) > 1e-15)
        return 3;
    std::printf("C++ ok: libssm %s, lambda[0] = %g%+gi\n", ssm_version(),
                lambda[0].real(), lambda[0].imag());
    return 0;
}
