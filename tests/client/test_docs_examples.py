"""Every example in docs/client.md runs, as a user would run it, against a broker this test starts.

Each ```python block is a complete program for a broker on 127.0.0.1:9092 (replaced here by the test
broker's address); the ```text block right after it is what it prints, compared exactly."""

import pathlib
import re
import subprocess
import sys

import pytest

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "client.md"
DOC_BOOTSTRAP = "127.0.0.1:9092"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def examples() -> list[tuple[str, str]]:
    """(program, expected output) pairs, in the order of the guide."""
    blocks = [(m.group(1), m.group(2)) for m in _FENCE.finditer(DOC.read_text())]
    out = []
    for i, (language, text) in enumerate(blocks):
        if language != "python":
            continue
        following = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
        assert following[0] == "text", f"example {len(out) + 1} needs a ```text block with its output after it"
        out.append((text, following[1]))
    return out


EXAMPLES = examples()


def test_the_guide_covers_what_it_promises():
    programs = "\n".join(program for program, _ in EXAMPLES)
    for needed in ("Producer(", "group_id=", ".run(", "RetryPolicy(", "Admin(", "group_lag(", "subscribe(pattern=",
                   "value_serializer=", "OffsetAndMetadata(", "seek_to_committed("):
        assert needed in programs, f"no example in docs/client.md uses {needed}"
    assert all(DOC_BOOTSTRAP in program for program, _ in EXAMPLES)


@pytest.mark.parametrize("number", range(1, len(EXAMPLES) + 1))
def test_example_runs_and_prints_what_the_guide_says(bootstrap, number):
    program, expected = EXAMPLES[number - 1]
    done = subprocess.run([sys.executable, "-c", program.replace(DOC_BOOTSTRAP, bootstrap)],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"example {number} failed:\n{done.stderr}"
    assert done.stdout == expected, f"example {number} printed:\n{done.stdout}\nstderr:\n{done.stderr}"
