"""A quiet start for the `mmzoo` command (`mmzoo.load()` calls it once the command's
arguments are parsed).

TensorFlow writes start-up lines from C++ while it is imported and when it first looks for a GPU
(`I0000 ... oneDNN custom operations are on`, `E0000 ... failed call to cuInit` on a machine
without one, which reads like a failure). They come before any of the command's own code can
run, since importing `mmzoo.cli` imports `mmzoo`, which imports TensorFlow. So when this process
is the `mmzoo` command (`mmzoo ...`, `python -m mmzoo ...` or `python -m mmzoo.cli ...`) run
without `-v`/`--verbose`, this module sets TensorFlow's C++ log level to fatal errors only and
imports TensorFlow, Keras and KerasHub with the process' stderr set aside (shown if the import
fails). Importing mmzoo as a library changes nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile

CLI_MODULES = ("mmzoo", "mmzoo.cli")
VERBOSE_FLAGS = ("-v", "--verbose")


def command_line():
    """The arguments after the program when this process is the `mmzoo` command, else None."""
    argv = list(getattr(sys, "orig_argv", None) or [])
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m":
            return argv[i + 2:] if argv[i + 1] in CLI_MODULES else None
    if sys.argv and os.path.basename(sys.argv[0]) in ("mmzoo", "mmzoo.exe"):
        return sys.argv[1:]
    return None


def quiet_start():
    """Import TensorFlow, Keras and KerasHub without their start-up lines (see the module doc);
    a no-op unless this process is the `mmzoo` command without `-v`."""
    args = command_line()
    if args is None or any(a in VERBOSE_FLAGS for a in args) or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401
            import keras_hub  # noqa: F401
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)

