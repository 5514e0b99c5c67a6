"""The house rules, checked: no import cycles, a core without SpikeInterface, one place for the
SpikeInterface registrations, a leaf registry with entry points, presets, one weights store."""

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import spikeinterface_vqcompress as vq
from spikeinterface_vqcompress.core import registry, weights

PACKAGE = Path(vq.__file__).resolve().parent
PLUGIN_ONLY_NAMES = ("spikeinterface", "MEArec", "neo", "probeinterface")


def _modules(package: Path = PACKAGE) -> dict:
    """Module name -> file, for every ``.py`` of the package (``__init__`` named by its package)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(module: str, path: Path, modules: dict):
    """Every (absolute name, node) imported anywhere in the file, function-local imports included."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                yield (candidate if candidate in modules else target), node


def _internal_graph(package: Path = PACKAGE) -> dict:
    modules = _modules(package)
    graph = {module: set() for module in modules}
    for module, path in modules.items():
        for name, _ in _imports(module, path, modules):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)  # the named module only (not its parent packages' __init__)
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components of two or more modules (Tarjan, iterative)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_analysis_reads_relative_absolute_and_function_local_imports(tmp_path):
    package = tmp_path / "toy"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import f\n")
    (package / "a.py").write_text("import os\nfrom toy.sub import b\n\ndef f():\n    return b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def g():\n    from ..c import h  # function-local, relative\n    return h\n")
    (package / "c.py").write_text("import toy.a\n")
    graph = _internal_graph(package)
    assert graph == {"toy": {"toy.a"}, "toy.a": {"toy.sub.b"}, "toy.sub": set(), "toy.sub.b": {"toy.c"},
                     "toy.c": {"toy.a"}}
    assert _cycles(graph) == [["toy.a", "toy.c", "toy.sub.b"]]


def test_no_import_cycles():
    graph = _internal_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the analysis sees the package
    assert _cycles(graph) == []


def _outside_the_core(name: str) -> bool:
    """A module the core must not import: SpikeInterface and friends, or our plugin layer."""
    return name.split(".")[0] in PLUGIN_ONLY_NAMES or (
        name.split(".")[0] == "spikeinterface_vqcompress"
        and name not in ("spikeinterface_vqcompress", "spikeinterface_vqcompress._version")
        and not name.startswith("spikeinterface_vqcompress.core"))


def test_core_imports_no_spikeinterface():
    modules = _modules()
    core = {module: path for module, path in modules.items() if module.startswith("spikeinterface_vqcompress.core")}
    assert len(core) > 20
    offenders = [f"{module}: {name}" for module, path in core.items()
                 for name, _ in _imports(module, path, modules) if _outside_the_core(name)]
    assert offenders == []
    # nor by a dotted path in a string (importlib.import_module, a lazy "module:Class" table)
    dotted = re.compile(r"^[A-Za-z_]\w*(\.\w+)*(:[\w.]+)?$")
    strings = [f"{module}: {node.value}" for module, path in core.items()
               for node in ast.walk(ast.parse(path.read_text(), str(path)))
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and dotted.match(node.value)
               and _outside_the_core(node.value.partition(":")[0]) and node.value != registry.ENTRY_POINT_GROUP]
    assert strings == []


def test_builtin_codecs_live_in_the_core_and_answer_to_their_id():
    for codec_id, target in registry.BUILTIN_CODECS.items():
        assert target.startswith("spikeinterface_vqcompress.core.codecs."), target
        cls = registry.get_codec_class(codec_id)
        assert cls.codec_id == codec_id and issubclass(cls, vq.Codec)
        assert f"{cls.__module__}:{cls.__qualname__}" == target


def test_spikeinterface_registrations_happen_in_plugin_only():
    """Names (or attributes, imported names, getattr strings) of SpikeInterface's registration tables."""
    markers = {"register_result_extension", "sorter_dict", "sorter_full_list", "pp_names_to_functions",
               "preprocessor_dict"}
    users = {}
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                    else node.name if isinstance(node, ast.alias)
                    else node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None)
            if name in markers:
                users.setdefault(path.relative_to(PACKAGE).as_posix(), set()).add(name)
    assert set(users) == {"plugin.py"}, users
    assert {"register_result_extension", "sorter_dict"} <= users["plugin.py"]


BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def _run(code: str, **env_extra) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_core_round_trips_in_a_process_where_spikeinterface_cannot_be_imported(tmp_path):
    code = BLOCKER.format(blocked=PLUGIN_ONLY_NAMES) + textwrap.dedent(f"""
        import numpy as np
        import spikeinterface_vqcompress as vq
        from spikeinterface_vqcompress.core.container import ContainerReader, ContainerWriter

        rng = np.random.default_rng(0)
        chunk = (rng.normal(0, 40, (3000, 4)) + 100 * np.sin(np.arange(3000) / 7)[:, None]).astype(np.int16)
        for name, bound in [("archive", 0), ("storage", 16), ("zstd", 0), ("flac", 0), ("broadband", 0)]:
            codec = vq.get_codec(name)
            decoded = codec.decode(codec.encode(chunk), *chunk.shape, chunk.dtype)
            assert np.abs(decoded.astype(int) - chunk).max() <= bound, name
        codec = vq.get_codec("storage")
        header = {{"codec": codec.get_config(), "lossless": False, "model_sha256": None, "num_channels": 4,
                   "channel_ids": [0, 1, 2, 3], "dtype": "int16", "sampling_frequency": 30000.0,
                   "segments": [{{"num_samples": 3000, "t_start": None}}], "chunk_num_samples": 1000}}
        path = {str(tmp_path / "core.vqc")!r}
        for target in (path, None):  # a file, then in memory
            writer = ContainerWriter(header, target)
            for index in range(3):
                writer.write_chunk(0, index, index * 1000, 1000, codec.encode(chunk[index * 1000:(index + 1) * 1000]))
            written = writer.close()
            traces = ContainerReader(written).get_traces()
            assert traces.shape == chunk.shape and np.abs(traces.astype(int) - chunk).max() <= 16
        for name in ("compress", "CompressedRecording", "ContainerRecording", "read_compressed", "write_compressed",
                     "load_recording", "compute_compressed_waveforms"):
            try:
                getattr(vq, name)
            except ImportError as error:
                assert "needs SpikeInterface" in str(error) and "pip install spikeinterface" in str(error), error
            else:
                raise AssertionError(f"vq.{{name}} without SpikeInterface should raise ImportError")
        import sys
        assert not any(name.split(".")[0] in {PLUGIN_ONLY_NAMES!r} for name in sys.modules)
        print("core ok")
        """)
    result = _run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("core ok")


def test_every_core_module_imports_and_every_committed_fixture_decodes_without_spikeinterface():
    """The whole core, learned codecs included, in a process where SpikeInterface cannot be imported."""
    fixtures = Path(__file__).resolve().parent / "fixtures"
    code = BLOCKER.format(blocked=PLUGIN_ONLY_NAMES) + textwrap.dedent(f"""
        import hashlib, importlib, json, pkgutil, sys
        from pathlib import Path
        import numpy as np
        import spikeinterface_vqcompress.core as core
        from spikeinterface_vqcompress.core.container import ContainerReader

        names = [info.name for info in pkgutil.walk_packages(core.__path__, core.__name__ + ".")]
        assert len(names) > 20, names
        for name in names:
            importlib.import_module(name)
        fixtures = Path({str(fixtures)!r})
        manifest = json.loads((fixtures / "codec_manifest.json").read_text())
        for file_name, entry in manifest["files"].items():
            decoded = ContainerReader(fixtures / file_name).get_traces()
            if entry["integer_decoder"]:
                assert hashlib.sha256(decoded.tobytes()).hexdigest() == entry["decoded_sha256"], file_name
            else:
                expected = np.load(fixtures / entry["decoded_file"])
                assert np.abs(decoded.astype(np.int64) - expected).max() <= 1, file_name
        assert not any(name.split(".")[0] in {PLUGIN_ONLY_NAMES!r} for name in sys.modules)
        print(len(names), "core modules,", len(manifest["files"]), "fixtures ok")
        """)
    result = _run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("fixtures ok")


def test_registry_is_a_leaf_that_imports_no_codec():
    code = textwrap.dedent("""
        import sys
        from spikeinterface_vqcompress.core import registry
        ids = registry.available_codecs()
        assert {"zstd", "broadband", "spike-cae"} <= set(ids), ids
        loaded = [name for name in sys.modules if name.startswith("spikeinterface_vqcompress.core.codecs.")]
        assert loaded == [], loaded
        registry.get_codec_class("zstd")
        assert "spikeinterface_vqcompress.core.codecs.classic" in sys.modules
        assert "spikeinterface_vqcompress.core.codecs.spike_cae.codec" not in sys.modules
        print("leaf ok")
        """)
    result = _run(BLOCKER.format(blocked=("spikeinterface",)) + code)
    assert result.returncode == 0, result.stderr[-3000:]
    modules = _modules()
    registry_imports = {name for name, _ in _imports("spikeinterface_vqcompress.core.registry",
                                                      modules["spikeinterface_vqcompress.core.registry"], modules)}
    assert not any(name.startswith("spikeinterface_vqcompress") for name in registry_imports)


THIRD_PARTY_CODEC = '''
import numpy as np
from spikeinterface_vqcompress import Codec, CorruptDataError


class IdentityCodec(Codec):
    """Raw little-endian samples: a codec from a package that is not ours."""

    codec_id = "test-identity"
    lossless = True

    def encode(self, traces):
        return np.ascontiguousarray(self.check_traces(traces), dtype="<i2").tobytes()

    def decode(self, data, num_samples, num_channels, dtype):
        if len(data) != 2 * num_samples * num_channels:
            raise CorruptDataError("test-identity: wrong length")
        return np.frombuffer(data, dtype="<i2").astype(dtype).reshape(num_samples, num_channels)
'''


def test_a_third_party_package_registers_a_codec_through_the_entry_point_group(tmp_path):
    (tmp_path / "my_vq_codec.py").write_text(THIRD_PARTY_CODEC)
    dist_info = tmp_path / "my_vq_codec-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-vq-codec\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\ntest-identity = my_vq_codec:IdentityCodec\n")
    code = textwrap.dedent(f"""
        import numpy as np
        from spikeinterface.core import NumpyRecording
        import spikeinterface_vqcompress as vq

        assert "test-identity" in vq.available_codecs()
        traces = np.arange(4000, dtype=np.int16).reshape(1000, 4)
        codec = vq.get_codec("test-identity")
        assert np.array_equal(codec.decode(codec.encode(traces), 1000, 4, np.int16), traces)
        compressed = vq.compress(NumpyRecording(traces, 1000.0), codec="test-identity",
                                 file_path={str(tmp_path / "t.vqc")!r})
        assert np.array_equal(compressed.get_traces(), traces)
        assert vq.read_compressed({str(tmp_path / "t.vqc")!r}).container_header["codec"] == {{"id": "test-identity"}}
        print("entry point ok")
        """)
    import os

    result = _run(code, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test-identity" not in vq.available_codecs()  # only where the package is installed


def test_register_codec_at_run_time():
    namespace = {}
    exec(THIRD_PARTY_CODEC, namespace)
    cls = namespace["IdentityCodec"]
    try:
        assert vq.register_codec(cls) is cls
        assert "test-identity" in vq.available_codecs() and vq.get_codec("test-identity").lossless
        with pytest.raises(ValueError, match="already registered"):
            vq.register_codec(type("Other", (cls,), {}))
        with pytest.raises(ValueError, match="preset"):
            vq.register_codec(type("Storage", (cls,), {"codec_id": "storage"}))
    finally:
        registry._RUNTIME.pop("test-identity", None)
        registry._LOADED.pop("test-identity", None)
    assert "test-identity" not in vq.available_codecs()


def test_presets_resolve_to_plain_configs():
    presets = vq.available_presets()
    assert set(presets) == {"archive", "storage", "implant"}
    for preset in presets.values():
        assert preset.purpose and preset.measured and preset.config["id"] in vq.available_codecs()
    assert vq.get_codec("storage").get_config()["max_error"] == 16
    assert vq.get_codec("storage", max_error=8).get_config()["max_error"] == 8
    assert vq.get_codec({"id": "archive"}).lossless
    with pytest.raises(ValueError, match="presets: archive"):
        vq.get_codec("no-such-codec")


def test_compress_with_every_preset_records_the_resolved_codec(tmp_path):
    from spikeinterface.core import generate_ground_truth_recording

    recording, _ = generate_ground_truth_recording(durations=[4.0], sampling_frequency=32000.0, num_channels=32,
                                                   num_units=4, seed=3)
    recording = recording.astype("int16") if recording.get_dtype() != np.int16 else recording
    recording.set_channel_gains(0.195)
    recording.set_channel_offsets(0.0)
    raw = recording.get_traces()
    implant = {"id": "spike-vq", "residual_step": 3.0, "refine_step": 1.0, "channel_escape_threshold": 4.0}
    for preset, expected in [("archive", {"id": "broadband", "max_error": 0}),
                             ("storage", {"id": "broadband", "max_error": 16}), ("implant", implant)]:
        path = tmp_path / f"{preset}.vqc"
        compressed = vq.compress(recording, codec=preset, file_path=path, progress_bar=False)
        codec_config = vq.read_compressed(path).container_header["codec"]
        assert {key: codec_config[key] for key in expected} == expected, preset
        rebuilt = compressed.get_traces()
        assert rebuilt.shape == raw.shape
        error = np.abs(rebuilt.astype(np.int64) - raw).max()
        if preset == "archive":
            assert error == 0
        elif preset == "storage":
            assert 0 < error <= 16
        else:
            assert codec_config["prior"] == weights.default_model("spike-vq")
            assert compressed.compression_ratio > 50


def test_one_weights_store_with_one_default_table():
    assert weights.default_model("spike-cae", num_channels=15) == "np64-15x96"  # was the 1-epoch np64-15x48
    assert weights.default_model("spike-cae", num_channels=4) == "nn32-4x64-r2"
    assert weights.default_model("spike-cae", recording_num_channels=384) == "np64-15x96"
    assert weights.default_model("spike-cae", recording_num_channels=32) == "nn32-4x64-r2"
    with pytest.raises(ValueError, match="no shipped spike CAE for 7-channel"):
        weights.default_model("spike-cae", num_channels=7)
    for family in weights.SHIPPED_WEIGHTS:
        for name in weights.shipped_models(family):
            path = weights.model_path(family, name)
            card = weights.model_card(family, name)
            assert card is not None and card["weights_sha256"] == weights.file_sha256(path), (family, name)
    with pytest.raises(FileNotFoundError, match="neither a shipped model"):
        weights.model_path("esort", "no-such-backbone")
    modules = _modules()
    folders = [module for module, path in modules.items() if 'Path(__file__)' in path.read_text()
               and '"models"' in path.read_text()]
    assert folders == ["spikeinterface_vqcompress.core.weights"]


def test_compressed_waveforms_on_15_channels_picks_the_retrained_model():
    import spikeinterface.core as si

    from spikeinterface_vqcompress.core.codecs.spike_cae.model import load_spike_cae

    assert load_spike_cae(None, num_channels=15).source == "np64-15x96"
    assert json.loads(json.dumps(weights.DEFAULT_MODELS))  # one JSON-able table
    recording, sorting = si.generate_ground_truth_recording(durations=[2.0], sampling_frequency=32000.0,
                                                            num_channels=32, num_units=3, seed=5)
    analyzer = si.create_sorting_analyzer(sorting, recording, sparse=False, format="memory")
    analyzer.compute("random_spikes", max_spikes_per_unit=10, seed=0)
    extension = analyzer.compute("compressed_waveforms", num_channels=15)  # model=None
    assert extension.params["model"] == "np64-15x96" and extension.params["num_channels"] == 15
    assert extension.get_data().shape[0] == len(analyzer.get_extension("random_spikes").get_data())


def test_help_and_zarr_codec_reads_do_not_import_torch():
    """Issue 30 (slow start): `vqcompress --help` and a zarr read through our numcodecs codec load
    neither torch nor a learned model (torch alone takes seconds to import)."""
    code = textwrap.dedent("""
        import contextlib, io, sys
        import numpy as np
        from spikeinterface_vqcompress.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as text:
            try:
                main(["--help"])
            except SystemExit:
                pass
        assert "compress" in text.getvalue()
        from numcodecs.registry import get_codec
        codec = get_codec({"id": "vqcompress_broadband"})
        data = (np.arange(4000, dtype=np.int64) % 97 - 48).astype(np.int16).reshape(1000, 4)
        assert np.array_equal(np.frombuffer(codec.decode(codec.encode(data)), dtype=np.int16).reshape(1000, 4), data)
        assert "torch" not in sys.modules, "torch was imported"
        print("light ok")
        """)
    result = _run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("light ok")
