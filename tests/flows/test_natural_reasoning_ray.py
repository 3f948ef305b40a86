"""natural-reasoning's generation stages on Ray (`executor=ray`, a local 2-CPU instance): the same
questions and stage directories as the local executor."""

from dataclasses import replace
from pathlib import Path

import pytest

from selftaught.data.shards import read_stage
from selftaught.flows import natural_reasoning as flow
from selftaught.presets import RECIPES

ray = pytest.importorskip("ray")
RECIPE = RECIPES["natural-reasoning"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def test_ray_stages_equal_the_local_ones(tmp_path):
    base = replace(RECIPE.preset("tiny-smoke"), num_documents=60, shard_size=16, dedup_embedder="hash")
    local, on_ray = (replace(base, out_dir=str(tmp_path / name)) for name in ("local", "ray"))
    on_ray = replace(on_ray, executor="ray")
    questions = {name: flow.synthesize(cfg, {}) for name, cfg in (("local", local), ("ray", on_ray))}
    assert questions["ray"] == questions["local"] and questions["local"]
    for stage in ("annotate/replies", "annotate/ratings", "backtranslate/replies", "backtranslate/parsed"):
        assert read_stage(Path(on_ray.out_dir) / stage) == read_stage(Path(local.out_dir) / stage)
    with pytest.raises(ValueError, match="executor"):
        replace(base, executor="spark")
