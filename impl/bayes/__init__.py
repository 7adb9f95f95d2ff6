"""`vaespec bayes`: the generative path's parameters as a Bayesian model, on Pyro (the `bayes` extra).

The model is stated in `vaespec.spec.bayes`; `model` holds the Pyro models (`linear_gaussian_model`,
whose likelihood term is the exact evidence, and `bias_model` with its conjugate posterior),
`run` the SVI / NUTS run and its report, `cli` the command. Only this subpackage imports Pyro,
so `import vaespec.impl` never needs it.
"""
