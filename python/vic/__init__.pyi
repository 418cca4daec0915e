"""vic: a compiler for variational inference in sequential latent-variable models.

Write a model in a ``.vmodel`` file, compile it with :class:`Model`, read the derived ELBO,
train it with :meth:`Model.fit` (numpy arrays in, numpy arrays out) and keep the result as a
run directory that ``vic eval``, ``vic params`` and ``vic run --resume`` read. See
docs/python.md.
"""

from os import PathLike
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, PathLike]
_Data = Union[None, _Path, Mapping[str, npt.ArrayLike]]
_Format = Literal["text", "latex", "json"]

class VicError(Exception):
    """A fault vic reports with a stable code; ``str(e)`` is the rendered report."""

    code: str
    """The code without its ``vic::`` prefix, e.g. ``"E092"`` (docs/errors.md lists them)."""
    message: str
    """One sentence saying what is wrong."""
    help: str
    """How to fix it."""

class ModelError(VicError):
    """A model that does not compile, with every diagnostic (not only the first).

    ``code``, ``message``, ``help`` and ``span`` are the first error's; ``str(e)`` is the
    miette report of all of them, as ``vic check`` prints it.
    """

    span: Optional[Tuple[int, int]]
    """``(line, column)`` of the first error, both counted from 1; ``None`` without a span."""
    diagnostics: List[Dict[str, Any]]
    """Every diagnostic: ``code``, ``severity`` (``"error"``/``"warning"``), ``message``,
    ``help``, ``span`` and ``labels`` (``start``, ``end``, ``text``)."""

class DataError(VicError):
    """Data that does not fit the model, with the codes of data files (``E101``–``E116``)."""

    array: Optional[str]
    """The offending array, where there is one."""

class TrainError(VicError):
    """Training or evaluation failed: ``E201`` (NaN), ``E200`` (a feature the runtime does
    not run), ``E093`` (a checkpoint), ``E204`` (a fault in vic)."""

class Model:
    """A compiled ``.vmodel``: parsed, checked, its ELBO derived.

    Raises :class:`ModelError` (with every diagnostic) when the source does not compile.
    """

    def __init__(self, source: str, name: str = "<string>") -> None:
        """Compile model source text; ``name`` labels diagnostics."""
    @staticmethod
    def from_file(path: _Path) -> "Model":
        """Compile a ``.vmodel`` file. Its ``data "…"`` is read relative to the file."""
    @property
    def name(self) -> str:
        """The model's name (``model NAME { … }``)."""
    @property
    def source(self) -> str:
        """The source text."""
    @property
    def file(self) -> Optional[str]:
        """The file it was read from, if any."""
    @property
    def warnings(self) -> List[Dict[str, Any]]:
        """The checker's warnings, as :attr:`ModelError.diagnostics` entries."""
    def elbo(self, format: _Format = "text") -> str:
        """The derived ELBO, term by term, as ``vic elbo`` prints it (``"text"``), or as
        LaTeX or JSON (``json.loads`` it)."""
    def derivation(self, format: _Format = "text") -> str:
        """The ELBO with its numbered step-by-step derivation (``vic elbo --steps``)."""
    def graph(self) -> str:
        """The graphical model as Graphviz DOT (``vic graph``)."""
    def fit(
        self,
        data: _Data = None,
        *,
        steps: Optional[int] = None,
        epochs: Optional[int] = None,
        batch: Optional[int] = None,
        seed: int = 0,
        lr: float = 1e-3,
        samples: int = 10,
        holdout: Optional[float] = None,
        horizon: Optional[int] = None,
        clip: Optional[float] = None,
        weight_decay: float = 0.0,
        warmup: int = 0,
        cosine: bool = False,
        runtime: Literal["auto", "fused", "reference"] = "auto",
        log_every: int = 10,
        eval_every: int = 100,
        checkpoint_every: int = 500,
        out: Optional[_Path] = None,
        resume: bool = False,
        force: bool = False,
        callback: Optional[Callable[[int, Dict[str, Any]], None]] = None,
        progress: Optional[bool] = None,
    ) -> "Fit":
        """Train the model, exactly as ``vic run`` does with the same options.

        ``data``: ``None`` for the model's own ``data "…"`` file (none for a control
        problem), a data file (``.npz``, ``.npy``, ``.csv``), or a dict of numpy arrays by
        observed variable name — ``(N, dims…)`` for static variables, ``(N, T, dims…)`` for
        time-indexed ones, float32/float64 (integers and bool convert), C or Fortran order —
        with an optional ``"mask"`` of shape ``(N, T)`` for ragged sequences. Arrays are
        validated like files (:class:`DataError` with the same codes).

        The options are ``vic run``'s flags (``steps`` defaults to 1000 unless ``epochs``;
        ``batch`` to the model's ``batch``, else 128; ``holdout`` to 0.1). ``callback(step,
        metrics)`` is called after every step with that step's ``metrics.jsonl`` row.
        ``progress``: a one-line progress bar on ``sys.stderr`` (steps, rate, ETA, running
        ELBO); by default shown in a terminal or a Jupyter kernel.
        Training releases the GIL; Ctrl-C (or an exception in ``callback``) stops it between
        steps and is raised here — with ``out`` the checkpoint is written first, and
        ``fit(..., out=out, resume=True)`` (or ``vic run MODEL --resume out``) continues it.

        ``out``: write the run directory ``vic run --out`` writes, as the run goes
        (``config.json``, ``model.vmodel``, ``metrics.jsonl``, ``checkpoint.safetensors``, and
        ``elbo.svg`` at the end), holding its lock file ``.vic-run.lock`` meanwhile; a directory
        another run holds is refused (``E094``), one that holds a run (``E095``) unless
        ``resume`` or ``force``.
        """

class Fit:
    """A trained model: its parameters, its training history, evaluation, and its run
    directory."""

    @property
    def params(self) -> Dict[str, np.ndarray]:
        """The learned values by name (``"emit.l0.w"``, ``"m"``), float64, constraints
        applied (softplus etc.), as ``vic params --format json`` prints ``value``."""
    @property
    def raw_params(self) -> Dict[str, np.ndarray]:
        """The unconstrained values the optimiser updates (``raw`` of ``vic params``)."""
    @property
    def history(self) -> List[Dict[str, Any]]:
        """The rows of ``metrics.jsonl``: training rows every ``log_every`` steps
        (``step``, ``split="train"``, ``elbo``, ``terms``, ``lr``, ``grad_norm``, ``time``),
        held-out evaluations (``split="heldout"``, ``stderr``, ``terms_stderr``) and the
        final evaluation (``final=True``)."""
    @property
    def report(self) -> Optional[Dict[str, Any]]:
        """The final evaluation of :meth:`Model.fit` (``None`` for a loaded fit)."""
    @property
    def step(self) -> int:
        """Optimiser steps taken."""
    @property
    def runtime(self) -> str:
        """The runtime that trains (fused or reference, and why)."""
    @property
    def seconds(self) -> float:
        """Wall-clock seconds of the training loop."""
    @property
    def model(self) -> Model:
        """The model."""
    @property
    def term_labels(self) -> List[str]:
        """The readable names of the ELBO's terms (the keys of ``terms``)."""
    def evaluate(
        self,
        data: _Data = None,
        samples: int = 100,
        seed: Optional[int] = None,
        iwae: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Estimate the ELBO with ``samples`` draws per sequence, as ``vic eval --json``:
        ``elbo``, ``stderr``, ``n``, ``terms`` (each with ``label``, ``mean``, ``stderr``)
        and, where vic computes them, ``log_evidence`` and ``gap`` (exact for
        linear-Gaussian models) or ``evidence_note``; ``iwae=K`` adds the IWAE-K bound.
        ``data`` as in :meth:`Model.fit`; by default the held-out split (else the training
        data). ``seed`` defaults to the fit's."""
    def sample(
        self,
        n: int = 16,
        *,
        condition: Union[None, int, Mapping[str, npt.ArrayLike]] = None,
        horizon: Optional[int] = None,
        data: _Data = None,
        seed: Optional[int] = None,
    ) -> Dict[str, np.ndarray]:
        """Draw ``n`` sequences from p, as ``vic sample`` does (bit for bit with the same
        data and seed): every latent, state and observed variable, float32, ``(n, T, size)``
        for time-indexed variables and ``(n, size)`` for static ones.

        ``condition=K`` follows the posterior on the first ``K`` steps of the data (default:
        the fit's training split; ``data=`` another) and runs p open loop after;
        ``condition={name: array, …}`` conditions on those arrays, all of their steps. The
        data's rows (cycled) give the inputs, cut or padded with zeros to ``horizon``
        (default: the data's length, else the model's horizon). ``seed`` defaults to the
        fit's."""
    def posterior_predictive(
        self,
        data: _Data = None,
        *,
        n: int = 16,
        draws: int = 100,
        one_step: bool = False,
        seed: Optional[int] = None,
    ) -> Dict[str, np.ndarray]:
        """Posterior predictive draws, as ``vic sample --posterior`` makes them (bit for bit
        with the same data, ``--n``, ``--draws`` and ``--seed``): for each of the first ``n``
        sequences of ``data`` (default: the fit's data file, else its training data),
        ``draws`` reconstructions x̃ ~ p(x | z), z ~ q(z | x). Returns float32 arrays by
        name: every variable's draws, ``(draws, n, T, size)`` for time-indexed variables and
        ``(draws, n, size)`` for static ones; each observed variable's data as
        ``<name>_data``; with ``one_step=True`` the one-step predictions ``<name>_onestep``
        (p one step open loop from the posterior at t − 1; NaN at the first step).
        ``seed`` defaults to the fit's."""
    def save(self, dir: _Path) -> None:
        """Write the run directory ``vic run`` writes: ``config.json``, ``model.vmodel``,
        ``checkpoint.safetensors``, ``metrics.jsonl`` and ``elbo.svg`` (holding its lock
        file while it writes)."""
    @staticmethod
    def load(dir: _Path, data: _Data = None) -> "Fit":
        """Load a run directory written by :meth:`save` or ``vic run``; its data is the
        recorded data file (if it exists) unless ``data`` is given."""

def agent(
    model: Union[Model, _Path],
    env: Any,
    *,
    out: _Path,
    env_steps: int = 20000,
    prefill: int = 1000,
    train_every: int = 10,
    batch: int = 16,
    length: int = 50,
    model_lr: float = 6e-4,
    actor_lr: float = 8e-5,
    critic_lr: float = 8e-5,
    eval_every: int = 2000,
    eval_episodes: int = 5,
    seed: int = 0,
    resume: bool = False,
    force: bool = False,
    callback: Optional[Callable[[Dict[str, Any]], None]] = None,
    id: Optional[str] = None,
) -> Dict[str, Any]:
    """Learn a world model and a behaviour in a Python environment, as ``vic agent`` does.

    ``model``: a :class:`Model` (or a ``.vmodel`` path) with an ``imagine`` block; ``env``:
    a Gymnasium environment object (``reset(seed=…)`` → ``(obs, info)``, ``step(action)`` →
    ``(obs, reward, terminated, truncated, info)``, Box ``observation_space`` and
    ``action_space``), stepped in-process. ``out`` is written as by ``vic agent --out``
    (``episodes.jsonl``, ``metrics.jsonl``, ``checkpoint.safetensors``, ``replay.npz``,
    ``agent.json``, ``model.vmodel``); a directory that holds a run is refused (``E095``)
    unless ``resume`` (continue it) or ``force``. ``callback(record)`` sees every episode's
    record. Ctrl-C stops the loop after a checkpoint (``KeyboardInterrupt``); an exception
    of the environment is re-raised as it was. The updates run with the GIL released: only
    the environment's ``reset``/``step``, ``callback`` and the check for Ctrl-C take it, so
    other Python threads run while the agent trains. Returns ``{"out", "progress", "episodes"}``: the loop's counters and every
    episode record.
    """
