"""The hpa scenario's verdict and plot on the timeline written by hand (siege/hpa-sample.json),
as `python3 -m siege.hpa --self-test` runs them for scripts/check-deploy.sh."""

import contextlib
import io
import unittest

from siege import hpa


class HpaTest(unittest.TestCase):
    def test_the_self_test_passes(self):
        printed = io.StringIO()
        with contextlib.redirect_stderr(printed):
            self.assertEqual(hpa.self_test(), 0, printed.getvalue())


if __name__ == "__main__":
    unittest.main()
