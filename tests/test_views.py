"""The View record lives in a torch-free module, so reading a store needs no training stack."""

import subprocess
import sys

from pipeline import augment, views


def test_import_pipeline_store_loads_no_torch():
    code = (
        "import pipeline.store, sys; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_augment_uses_the_same_record():
    assert augment.View is views.View and augment.IDENTITY == views.View(seed=0, view_index=0)
    view = views.View(seed=1, view_index=2, partner="b", lam=0.25, freq_masks=((3, 4),))
    assert view.to_dict()["freq_masks"] == [[3, 4]]
