"""The ``yolocam`` command: :mod:`~yolocam_core.cli.main` (the parser and dispatch),
:mod:`~yolocam_core.cli.options` (exit codes, the one-line error, argument types and
the options commands share) and one module per command (:mod:`~.detect`,
:mod:`~.explain`, :mod:`~.evaluate`, :mod:`~.batch`).

Nothing in the library imports this package; it only builds specs and calls the
library. Run it as ``yolocam`` or ``python -m yolocam_core.cli``.
"""
