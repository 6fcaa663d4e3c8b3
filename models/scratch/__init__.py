"""The from-scratch numpy CNN as jobs: overfit, converge, profile, gradcheck (`sysdl scratch`, `sysdl gradcheck`)."""
