"""The exceptions of vic: every fault carries vic's stable code (``"E031"``)."""


class VicError(Exception):
    """A fault vic reports with a stable code.

    ``str(e)`` is the rendered report; ``e.code`` is the code without its ``vic::`` prefix
    (``"E092"``), ``e.message`` the one-sentence message and ``e.help`` the advice.
    """

    def __init__(self, report, code, message, help=""):
        super().__init__(report)
        self.code = code
        self.message = message
        self.help = help


class ModelError(VicError):
    """A model that does not compile: every diagnostic of the source, not only the first.

    ``code``, ``message``, ``help`` and ``span`` (``(line, column)``, from 1, or ``None``)
    are the first error's; ``diagnostics`` is a list of dicts with ``code``, ``severity``,
    ``message``, ``help``, ``span`` and ``labels``; ``str(e)`` is the miette report of all
    of them, as ``vic check`` prints it.
    """

    def __init__(self, report, code, message, help, span, diagnostics):
        super().__init__(report, code, message, help)
        self.span = span
        self.diagnostics = diagnostics


class DataError(VicError):
    """Data that does not fit the model (``E101``–``E116``, as for data files).

    ``array`` names the offending array, where there is one.
    """

    def __init__(self, report, code, message, help="", array=None):
        super().__init__(report, code, message, help)
        self.array = array


class TrainError(VicError):
    """Training or evaluation failed (``E201`` NaN, ``E200`` unsupported, ``E093`` checkpoint, ``E204`` backend)."""
