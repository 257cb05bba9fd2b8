"""The README's Python examples run as written.

Blocks fenced ```python are run; blocks fenced ```py need files of the reader's own (weights, images).
"""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_python_blocks_run():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert blocks
    for block in blocks:
        namespace = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["p"].count_params() == 138_357_544
    assert tuple(namespace["x"].shape) == (8, 10)
