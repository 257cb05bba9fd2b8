"""Small helpers every part of tfvgg shares: atomic file writes, shape formatting, mismatch lists."""
import contextlib
import json
import os


@contextlib.contextmanager
def atomic_open(path, mode="w"):
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    A reader sees the old file or the whole new one, never a part; on an error
    (or a kill before the rename) ``path`` is untouched and the temporary file
    is removed where Python still runs.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def atomic_write(path, text):
    """Write ``text`` (str) to ``path`` atomically (see ``atomic_open``)."""
    with atomic_open(path) as f:
        f.write(text)


def write_json(path, data):
    """``data`` as indented, key-sorted JSON, written atomically."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def spatial_dims(x, data_format):
    """(height, width) of a rank-4 ``[N, H, W, C]`` ("NHWC") or ``[N, C, H, W]`` ("NCHW") tensor (None if unknown)."""
    return tuple(x.shape[1:3] if data_format == "NHWC" else x.shape[2:4])


def format_shape(dims):
    """``(224, 224, 3)`` -> ``"224x224x3"`` (unknown dimensions print as None)."""
    return "x".join(str(d) for d in dims)


def list_mismatches(expected, found, found_label, expected_label):
    """What differs between two ``{name: shape}`` dicts, as phrases for one error message.

    ``["missing conv1_2/w, conv1_2/b", "unexpected fc9/w", "fc8/w: <found_label> (4096, 10),
    <expected_label> (4096, 1000)"]``; ``[]`` when every name and shape matches.
    """
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
               ([f"unexpected {', '.join(extra)}"] if extra else [])
    problems += [f"{name}: {found_label} {tuple(found[name])}, {expected_label} {tuple(expected[name])}"
                 for name in expected if name in found and tuple(found[name]) != tuple(expected[name])]
    return problems
