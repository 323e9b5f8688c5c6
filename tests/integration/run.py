"""Runs one integration test file for ctest: `python3 run.py test_NAME`.

Like `python3 -m unittest -v test_NAME`, but a file in which any test was skipped exits
with SKIP_CODE, which ctest reports as "Skipped" instead of a pass: a skipped test is not
a passing one, and scripts/test.sh fails the suite on it (the README's set-up installs
everything these tests need)."""

import sys
import unittest

SKIP_CODE = 77


def main():
    if len(sys.argv) != 2:
        print("usage: run.py test_NAME", file=sys.stderr)
        return 2
    suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.skipped:
        print("\n%d skipped:" % len(result.skipped))
        for test, why in result.skipped:
            print("  %s: %s" % (test.id(), why))
        return SKIP_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
