"""Entry-point discovery: built-ins and plugins come in the same way; failures name the plugin."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from synthgen import registry
from synthgen.data.continuous import ContinuousTransformer
from synthgen.errors import MetadataError, PluginError


@pytest.fixture
def fake_entry_points(monkeypatch):
    def install(*entries: EntryPoint) -> None:
        monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in entries if e.group == group])
        registry.plugins.cache_clear()

    yield install
    registry.plugins.cache_clear()


def _entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=registry.TRANSFORMER_GROUP)


def test_builtins_register_through_the_public_entry_point_group() -> None:
    found = registry.column_transformers()
    assert {"numerical", "categorical", "boolean", "datetime", "id"} <= set(found)
    assert found["numerical"] is ContinuousTransformer


def test_a_broken_plugin_is_named_with_its_cause(fake_entry_points) -> None:
    fake_entry_points(_entry("broken", "synthgen_no_such_module:Thing"))
    with pytest.raises(PluginError, match="'broken'") as info:
        registry.column_transformers()
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_duplicate_names_are_an_error(fake_entry_points) -> None:
    value = "synthgen.data.continuous:ContinuousTransformer"
    fake_entry_points(_entry("numerical", value), _entry("numerical", value))
    with pytest.raises(PluginError, match="two plugins"):
        registry.column_transformers()


def test_a_plugin_that_is_not_a_transformer_is_refused(fake_entry_points) -> None:
    fake_entry_points(_entry("odd", "pathlib:Path"))
    with pytest.raises(PluginError, match="not a subclass of ColumnTransformer"):
        registry.column_transformers()


def test_each_group_is_loaded_on_its_own_and_checked_against_its_own_base(fake_entry_points) -> None:
    fake_entry_points(
        _entry("numerical", "synthgen.data.continuous:ContinuousTransformer"),
        EntryPoint(name="broken", value="synthgen_no_such_module:Reader", group=registry.IMAGE_READER_GROUP),
        EntryPoint(name="odd", value="pathlib:Path", group=registry.SYNTHESIZER_GROUP),
    )
    assert list(registry.column_transformers()) == ["numerical"]  # a broken image reader does not stop columns
    with pytest.raises(PluginError, match="image reader plugin 'broken'"):
        registry.image_readers()
    with pytest.raises(PluginError, match="synthesizer plugin 'odd'.*from_bundle"):
        registry.synthesizers()


def test_builtin_synthesizers_are_found_by_the_kind_their_files_record() -> None:
    found = registry.synthesizers()
    assert {"tabular", "image"} <= set(found)
    assert all(cls.kind == kind for kind, cls in found.items())  # the entry-point name is the kind files record


def test_metadata_selects_by_transformer_key_then_sdtype() -> None:
    assert registry.transformer_for("x", {"sdtype": "numerical"}) is ContinuousTransformer
    with pytest.raises(MetadataError, match="'x'.*'fancy'"):
        registry.transformer_for("x", {"sdtype": "numerical", "transformer": "fancy"})


def test_the_example_plugin_models_a_column_end_to_end() -> None:
    """plugins/synthgen-lognormal, installed by .ci/run, selected through metadata."""
    pytest.importorskip("synthgen_lognormal", reason="pip install -e plugins/synthgen-lognormal")
    import numpy as np
    import pandas as pd

    from synthgen import Metadata, TabularSynthesizer

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"crp": rng.lognormal(1.0, 1.0, 300), "sex": rng.choice(["F", "M"], 300)})
    meta = Metadata.detect(table).update_column("crp", sdtype="numerical", transformer="log_numerical")
    model = TabularSynthesizer(meta, seed=0, steps=20, progress=False).fit(table)
    out = model.sample(200, seed=0)
    assert (out["crp"] > 0).all() and out["crp"].max() <= table["crp"].max()
    assert model.table_.transformer("crp").name == "log_numerical"
