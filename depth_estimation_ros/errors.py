"""The exception root of the package and the exit code of each kind of failure, shared by every console script.

Users catch ``DepthEstimationError`` or one of its three kinds. Each class keeps the builtin it derived from before
(``ValueError`` for bad data and options, ``RuntimeError`` for engines), so ``except ValueError`` keeps working.
The exit codes are documented in the README ("Exit codes").
"""

from __future__ import annotations

import sys


class DepthEstimationError(Exception):
    """Root of every error the package raises on purpose; the message names the problem and the fix."""


class InputError(DepthEstimationError, ValueError):
    """Data the user gave cannot be used: a file, bag, topic, image, dataset folder, sequence or calibration."""


class ConfigurationError(DepthEstimationError, ValueError):
    """An option, parameter or configuration file has an invalid value or combination of values."""


class ModelError(DepthEstimationError, RuntimeError):
    """A model or engine cannot be loaded, converted, built or run."""


class AccuracyError(ModelError):
    """An engine runs but fails its accuracy check (fp16 / INT8 accuracy gate, start-up self-test)."""


EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected error (a bug: traceback), or a run whose result failed a check it reports
EXIT_INPUT = 2  # InputError, a missing file, or a command line argparse refuses
EXIT_CONFIGURATION = 3  # ConfigurationError
EXIT_MODEL = 4  # ModelError
EXIT_ACCURACY = 5  # AccuracyError

# errors every console script reports as one line (the message) and its exit code, instead of a traceback
EXPECTED_ERRORS = (DepthEstimationError, FileNotFoundError, ValueError)


def exit_code(error: BaseException) -> int:
    """The exit code of a console script that stops on ``error`` (most specific kind first)."""
    for kind, code in ((AccuracyError, EXIT_ACCURACY), (ModelError, EXIT_MODEL),
                       (ConfigurationError, EXIT_CONFIGURATION), (InputError, EXIT_INPUT),
                       (FileNotFoundError, EXIT_INPUT), (ValueError, EXIT_INPUT)):
        if isinstance(error, kind):
            return code
    return EXIT_FAILURE


def report_error(program: str, error: BaseException, context: str = "") -> int:
    """Print ``program: error: [context: ]message`` to stderr; returns the exit code for ``error``."""
    where = f"{context}: " if context else ""
    print(f"{program}: error: {where}{error}", file=sys.stderr)
    return exit_code(error)
