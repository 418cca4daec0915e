"""vic: a compiler for variational inference in sequential latent-variable models.

>>> import vic
>>> m = vic.Model.from_file("models/ssm.vmodel")
>>> print(m.elbo())
>>> fit = m.fit(steps=200, seed=3)
>>> fit.params, fit.history, fit.evaluate(samples=100)

See docs/python.md.
"""

from ._errors import DataError, ModelError, TrainError, VicError
from ._vic import Fit, Model, __version__, agent

__all__ = ["Model", "Fit", "agent", "VicError", "ModelError", "DataError", "TrainError", "__version__"]
