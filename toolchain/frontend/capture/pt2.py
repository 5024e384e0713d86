"""Load a ``torch.export`` .pt2 archive without running anything from the file.

``torch.export.load`` (torch 2.13) must never see an untrusted file: it unpickles weights and
constants marked ``use_pickle`` with ``weights_only=False``, retries a failed ``weights_only=True``
load without it, dlopens AOTInductor libraries, hands shape strings to ``sympy.sympify`` (an
``eval``) and imports modules named in pytree specs. This loader

1. opens the zip itself (Python's zipfile) and checks every member: one root folder, no path
   tricks, stored (uncompressed) records whose sizes add up to at most the file's, and only the
   members a plain CPU ExportedProgram has (AOTInductor libraries, pickled objects and legacy
   weight pickles are refused by name);
2. rebuilds every weight and tensor constant from its raw bytes (``torch.frombuffer`` +
   ``as_strided`` after a bounds check): no pickle is involved; the example inputs (a pickle) are
   not read at all;
3. parses ``models/model.json`` with ``json`` and walks it: static shapes only (no ``as_expr``,
   which would reach ``sympify``), no subgraphs, script objects or operator arguments, every node
   an aten operator (or ``operator.getitem``), no range constraints, pytree specs of tuples, lists,
   dicts and leaves with plain JSON contexts, node metadata cut to ``stack_trace`` and
   ``nn_module_stack``;
4. only then gives the parsed, checked objects to torch's deserializer (private API of torch 2.13,
   schema 8: the tests pin it), and checks that every node it built is an aten operator.

Every refusal is one :class:`~toolchain.errors.CheckpointError` line naming the member or field.
"""
from __future__ import annotations

import json
import operator
import os
import re
import warnings
import zipfile
from typing import Any

import torch
from torch._export.serde import schema
from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

from ...errors import CheckpointError

MAX_MEMBERS = 200_000
MAX_JSON_BYTES = 256 << 20
# schema.ScalarType -> torch dtype (weights and buffers of a conv net; bool/complex/float8 refused)
DTYPES = {5: torch.int64, 4: torch.int32, 6: torch.float16, 7: torch.float32, 8: torch.float64,
          13: torch.bfloat16}
STRIDED = int(schema.Layout.Strided)
FIXED = {"archive_format": b"pt2", "archive_version": b"0", "byteorder": b"little"}
MEMBERS = re.compile(r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
                     r"|models/model\.json|data/weights/model_weights_config\.json"
                     r"|data/constants/model_constants_config\.json|data/sample_inputs/model\.pt"
                     r"|data/weights/weight_\d+|data/constants/tensor_\d+|extra/[\w.-]+)")
TARGET = re.compile(r"torch\.ops\.aten\.[a-z0-9_]+\.[A-Za-z0-9_]+|_operator\.getitem")
FORBIDDEN_KEYS = {"as_expr": "a symbolic (dynamic) shape; export with static shapes",
                  "as_graph": "a subgraph (control flow / higher-order op)",
                  "as_custom_obj": "a TorchScript object", "as_custom_objs": "TorchScript objects",
                  "as_operator": "an operator passed as an argument"}
INPUT_KINDS = {"user_input", "parameter", "buffer", "tensor_constant"}
OUTPUT_KINDS = {"user_output"}
DAMAGED = (OSError, EOFError, KeyError, ValueError, TypeError, AttributeError, NotImplementedError, RecursionError,
           zipfile.BadZipFile)        # zipfile on bad bytes, malformed JSON structures
KEPT_METADATA = ("stack_trace", "nn_module_stack")
TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict"}


def _refuse(path: str, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: refused to load this .pt2: {why}")


def _members(path: str, zf: zipfile.ZipFile) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    infos = zf.infolist()
    if not infos or len(infos) > MAX_MEMBERS:
        raise _refuse(path, f"{len(infos)} archive members")
    root = infos[0].filename.split("/", 1)[0]
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        segments = name.split("/")
        if not name.startswith(root + "/") or "\\" in name or any(s in ("..", ".") for s in segments) \
                or "" in segments[:-1]:
            raise _refuse(path, f"member {name!r} is outside the archive's root folder {root!r}")
        rel = name[len(root) + 1:]
        if rel in members:
            raise _refuse(path, f"member {rel!r} appears twice")
        if info.flag_bits & 0x1:
            raise _refuse(path, f"member {rel!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise _refuse(path, f"member {rel!r} is compressed (torch writes stored records)")
        if not MEMBERS.fullmatch(rel):
            raise _refuse(path, f"member {rel!r} is not part of a plain ExportedProgram "
                                f"(AOTInductor libraries, pickled objects and legacy pickles are not loaded)")
        members[rel] = info
        total += info.file_size
    if total > os.path.getsize(path):
        raise _refuse(path, "member sizes exceed the file size")
    for rel, value in FIXED.items():
        if rel not in members or zf.read(members[rel]).strip() != value:
            raise _refuse(path, f"{rel} is missing or not {value.decode()!r} (torch 2.13 writes archive version 0)")
    for rel in ("models/model.json", "data/weights/model_weights_config.json",
                "data/constants/model_constants_config.json"):
        if rel not in members:
            raise _refuse(path, f"member {rel} is missing (one program named 'model' expected)")
        if members[rel].file_size > MAX_JSON_BYTES:
            raise _refuse(path, f"member {rel} is larger than {MAX_JSON_BYTES >> 20} MiB")
    return root, members


def _json(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> Any:
    try:
        return json.loads(zf.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _refuse(path, f"{rel} is not valid JSON ({type(exc).__name__})") from exc


def _int(path: str, where: str, value: Any) -> int:
    if not (isinstance(value, dict) and set(value) == {"as_int"} and type(value["as_int"]) is int
            and value["as_int"] >= 0):
        raise _refuse(path, f"{where} is not a non-negative static integer")
    return value["as_int"]


def _tensors(path: str, zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], config: Any,
             folder: str, prefix: str, rel: str) -> dict[str, torch.Tensor]:
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise _refuse(path, f"{rel} has no 'config' mapping")
    flat: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for fqn, meta in config["config"].items():
        where = f"{rel} entry {fqn!r}"
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(path, f"{where} is pickled (use_pickle true); only raw tensors are loaded")
        name = meta.get("path_name")
        if not isinstance(name, str) or not re.fullmatch(re.escape(prefix) + r"\d+", name) \
                or folder + name not in members:
            raise _refuse(path, f"{where} names no raw tensor record ({name!r})")
        tm = meta.get("tensor_meta")
        if not isinstance(tm, dict):
            raise _refuse(path, f"{where} has no tensor_meta")
        code = tm.get("dtype")
        dtype = DTYPES.get(code) if isinstance(code, int) else None
        if dtype is None or tm.get("layout") != STRIDED:
            raise _refuse(path, f"{where} is not a dense tensor of a supported dtype "
                                f"(dtype code {tm.get('dtype')!r}, layout {tm.get('layout')!r})")
        if not isinstance(tm.get("device"), dict) or tm["device"].get("type") != "cpu":
            raise _refuse(path, f"{where} lives on {tm.get('device')!r}; export the model on the CPU")
        sizes = [_int(path, f"{where} size", s) for s in tm.get("sizes") or []]
        strides = [_int(path, f"{where} stride", s) for s in tm.get("strides") or []]
        offset = _int(path, f"{where} storage_offset", tm.get("storage_offset"))
        if len(sizes) != len(strides) or len(sizes) > 8:
            raise _refuse(path, f"{where} has inconsistent sizes / strides")
        nbytes = members[folder + name].file_size
        item = torch.empty((), dtype=dtype).element_size()
        if nbytes % item:
            raise _refuse(path, f"{where}: record of {nbytes} bytes is not a whole number of {dtype} elements")
        numel = 1
        for s in sizes:
            numel *= s
        extent = 0 if numel == 0 else offset + sum((s - 1) * st for s, st in zip(sizes, strides)) + 1
        if extent * item > nbytes:
            raise _refuse(path, f"{where} reaches past its record ({extent * item} > {nbytes} bytes)")
        if name not in flat:
            data = bytearray(zf.read(members[folder + name]))   # zipfile checks the CRC
            flat[name] = (torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype))
        tensor = torch.as_strided(flat[name], sizes, strides, offset) if numel else torch.zeros(sizes, dtype=dtype)
        if meta.get("is_param") is True:
            tensor = torch.nn.Parameter(tensor, requires_grad=bool(tm.get("requires_grad")))
        out[fqn] = tensor
    return out


def _check_treespec(path: str, where: str, text: Any) -> None:
    if text is None:
        return
    try:
        protocol, spec = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise _refuse(path, f"{where} is not a pytree spec") from exc
    if protocol != 1:
        raise _refuse(path, f"{where}: pytree protocol {protocol!r}")
    stack = [spec]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or set(node) != {"type", "context", "children_spec"}:
            raise _refuse(path, f"{where} has a malformed node")
        if node["type"] not in TREESPEC_TYPES:
            raise _refuse(path, f"{where} names the Python type {str(node['type'])[:80]!r}; only tuples, "
                                f"lists and dicts of tensors are accepted as inputs and outputs")
        if not isinstance(node["children_spec"], list) or not isinstance(node["context"], (str, type(None))):
            raise _refuse(path, f"{where} has a malformed node")
        if node["context"] is not None:
            try:
                context = json.loads(node["context"])        # plain JSON: no object_hook here
            except ValueError as exc:
                raise _refuse(path, f"{where} has a context that is not JSON") from exc
            if "__enum__" in json.dumps(context) or not (context is None or (
                    isinstance(context, list) and all(isinstance(k, (str, int)) for k in context))):
                raise _refuse(path, f"{where} has a context that is not a list of plain keys")
        stack.extend(node["children_spec"])


def _check_program(path: str, program: Any) -> None:
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _refuse(path, "models/model.json is not an ExportedProgram")
    version = program.get("schema_version") or {}
    if version.get("major") != schema.SCHEMA_VERSION[0]:
        raise _refuse(path, f"schema version {version} (this torch reads {schema.SCHEMA_VERSION})")
    if program.get("range_constraints"):
        raise _refuse(path, "the program has range constraints (dynamic shapes); export with static shapes")
    if any(v not in ("ATEN", "TRAINING", "") for v in program.get("verifiers") or []):
        raise _refuse(path, f"verifiers {program.get('verifiers')!r}")
    gm = program["graph_module"]
    # a walk over everything: forbidden union members anywhere
    stack: list[Any] = [gm]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in FORBIDDEN_KEYS:
                    raise _refuse(path, f"models/model.json holds {FORBIDDEN_KEYS[key]} ({key})")
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    graph = gm.get("graph") or {}
    if graph.get("custom_obj_values") or gm.get("treespec_namedtuple_fields"):
        raise _refuse(path, "the program holds TorchScript objects or named tuples")
    for node in graph.get("nodes") or []:
        target = node.get("target")
        if not isinstance(target, str) or not TARGET.fullmatch(target):
            raise _refuse(path, f"node {node.get('name') or '?'} calls {str(target)[:80]!r}; only aten "
                                f"operators are loaded")
        meta = node.get("metadata") or {}
        node["metadata"] = {k: meta[k] for k in KEPT_METADATA if isinstance(meta.get(k), str)}
    sig = gm.get("signature") or {}
    for spec in sig.get("input_specs") or []:
        kind = next(iter(spec), None)
        if kind not in INPUT_KINDS:
            raise _refuse(path, f"input of kind {kind!r} (tokens / script objects / ...)")
    for spec in sig.get("output_specs") or []:
        kind = next(iter(spec), None)
        if kind not in OUTPUT_KINDS:
            raise _refuse(path, f"output of kind {kind!r}; a buffer mutation means the model was exported "
                                f"in training mode: call model.eval() before torch.export.export")
    for i, entry in enumerate(gm.get("module_call_graph") or []):
        sig_ = (entry or {}).get("signature")
        if sig_:
            _check_treespec(path, f"module_call_graph[{i}] in_spec", sig_.get("in_spec"))
            _check_treespec(path, f"module_call_graph[{i}] out_spec", sig_.get("out_spec"))


def load_pt2(path: str | os.PathLike[str]) -> torch.export.ExportedProgram:
    """The ExportedProgram a .pt2 file holds, checked as the module docstring says (never running its code)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such .pt2 file")
    try:
        zf = zipfile.ZipFile(path)
    except DAMAGED as exc:
        raise _refuse(path, f"not a zip archive ({type(exc).__name__})") from exc
    with zf:
        try:
            _, members = _members(path, zf)
            program = _json(path, zf, members["models/model.json"], "models/model.json")
            _check_program(path, program)
            weights = _tensors(path, zf, members,
                               _json(path, zf, members["data/weights/model_weights_config.json"], "weights config"),
                               "data/weights/", "weight_", "weights config")
            constants = _tensors(path, zf, members,
                                 _json(path, zf, members["data/constants/model_constants_config.json"],
                                       "constants config"), "data/constants/", "tensor_", "constants config")
        except CheckpointError:
            raise
        except DAMAGED as exc:
            raise _refuse(path, f"damaged archive ({type(exc).__name__})") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)     # torch's own pytree deprecations
            serialized = _dict_to_dataclass(schema.ExportedProgram, program)
            ep = ExportedProgramDeserializer().deserialize(serialized, weights, constants, None)
    except CheckpointError:
        raise
    except Exception as exc:     # malformed but harmless JSON: torch raises many types
        raise _refuse(path, f"the program cannot be rebuilt ({type(exc).__name__}: {str(exc)[:120]})") from exc
    for node in ep.graph.nodes:  # belt and braces: what torch built is what we validated
        if node.op == "call_function":
            t = node.target
            if not (t is operator.getitem or
                    (isinstance(t, torch._ops.OpOverload) and t.namespace == "aten")):
                raise _refuse(path, f"node {node.name} calls {t!r}")
    return ep
