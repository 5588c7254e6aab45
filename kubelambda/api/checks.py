"""Checks across resources: what no single manifest shows, decided without I/O (pure).

`check_set` is what `kubelambda validate` runs and what dev mode refuses before serving: a
Function defined twice, a `code.path` that does not exist, a Version of a function that is not
there, an Alias or EventSourceMapping naming a missing function, version or alias. Versions
without `spec.version` are numbered as dev mode numbers them (`number_versions`). The wording of
a dangling reference comes from `missing_function` and `missing_version`, which the operator's
reconcilers use for the same cases in a cluster.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubelambda.api.common import LATEST, is_digits
from kubelambda.api.function import FunctionSpec
from kubelambda.api.manifests import Document
from kubelambda.api.resources import Alias, EventSourceMapping, Function, Version


@dataclass(frozen=True, eq=False)
class SetProblem:
    document: Document
    message: str  # "field: what is wrong, and what is allowed"

    @property
    def line(self) -> str:
        return self.document.line(self.message)


def missing_function(where: str, name: str, known: Collection[str] | None = None) -> str:
    """`known`: the namespace's functions, when the caller sees them all."""
    if known is None:
        return f"{where}: function {name} not found"
    listed = ", ".join(sorted(known)) or "none"
    return f"{where}: function {name} not found (functions in this namespace: {listed})"


def missing_version(where: str, function: str, version: str, known: Collection[str]) -> str:
    listed = ", ".join([LATEST, *sorted(known, key=int)])
    return f"{where}: version {version} of {function} not found (its versions: {listed})"


def _key(doc: Document, name: str) -> tuple[str, str]:
    return (doc.resource.namespace, name)


def number_versions(
    versions: Sequence[Document], pinned: dict[int, int] | None = None
) -> dict[int, int]:
    """id(document) -> version number. Explicit `spec.version`s and `pinned` numbers (Versions
    already published, by id) stand; the others follow their function's highest, in order."""
    pinned = pinned or {}
    highest: dict[tuple[str, str], int] = defaultdict(int)
    numbers: dict[int, int] = {}
    for doc in versions:
        res = doc.resource
        assert isinstance(res, Version)
        fixed = res.spec.version or pinned.get(id(doc))
        if fixed is not None:
            key = _key(doc, res.spec.function_name)
            highest[key] = max(highest[key], fixed)
            numbers[id(doc)] = fixed
    for doc in versions:
        res = doc.resource
        assert isinstance(res, Version)
        if id(doc) not in numbers:
            key = _key(doc, res.spec.function_name)
            highest[key] += 1
            numbers[id(doc)] = highest[key]
    return numbers


def _code_paths(spec: FunctionSpec, prefix: str) -> list[tuple[str, str]]:
    found = [(f"{prefix}.code.path", spec.code.path)] if spec.code.path else []
    found += [
        (f"{prefix}.layers[{i}].path", layer.path)
        for i, layer in enumerate(spec.layers)
        if layer.path
    ]
    return found


def _check_paths(
    doc: Document, spec: FunctionSpec, prefix: str, exists: Callable[[Path], bool]
) -> list[SetProblem]:
    problems = []
    for where, value in _code_paths(spec, prefix):
        target = Path(value) if Path(value).is_absolute() else doc.path.parent.absolute() / value
        if not exists(target):
            problems.append(
                SetProblem(
                    doc,
                    f"{where}: {value} does not exist (looked for {target}); allowed: a folder "
                    "or .zip, relative to the manifest's folder",
                )
            )
    return problems


def check_set(
    documents: Sequence[Document],
    *,
    exists: Callable[[Path], bool] = Path.exists,
    pinned: dict[int, int] | None = None,
) -> list[SetProblem]:
    """Every problem across the documents, each naming its document and field."""
    problems: list[SetProblem] = []
    functions: dict[tuple[str, str], Document] = {}
    for doc in documents:
        res = doc.resource
        if not isinstance(res, Function):
            continue
        key = _key(doc, res.name)
        if key in functions:
            first = functions[key]
            problems.append(
                SetProblem(
                    doc,
                    f"metadata.name: Function {res.namespace}/{res.name} is already defined "
                    f"in {first.where}; function names must be unique in a namespace",
                )
            )
            continue
        functions[key] = doc
        problems += _check_paths(doc, res.spec, "spec", exists)

    def names_in(namespace: str) -> list[str]:
        return [name for ns, name in functions if ns == namespace]

    versions = [d for d in documents if isinstance(d.resource, Version)]
    numbers = number_versions(versions, pinned)
    published: dict[tuple[str, str], dict[str, Document]] = defaultdict(dict)
    for doc in versions:
        res = doc.resource
        assert isinstance(res, Version)
        fn = res.spec.function_name
        if _key(doc, fn) not in functions:
            where = "spec.functionName"
            problems.append(SetProblem(doc, missing_function(where, fn, names_in(res.namespace))))
            continue
        number = str(numbers[id(doc)])
        taken = published[_key(doc, fn)]
        if number in taken:
            problems.append(
                SetProblem(
                    doc,
                    f"spec.version: version {number} of {fn} is already defined by "
                    f"{taken[number].label} in {taken[number].where}",
                )
            )
            continue
        taken[number] = doc
        if res.spec.function is not None:
            problems += _check_paths(doc, res.spec.function, "spec.function", exists)

    aliases: dict[tuple[str, str, str], Document] = {}
    for doc in documents:
        res = doc.resource
        if isinstance(res, Alias):
            problems += _check_alias(doc, res, functions, published, aliases, names_in)
    for doc in documents:
        res = doc.resource
        if isinstance(res, EventSourceMapping):
            problems += _check_mapping(doc, res, functions, published, aliases, names_in)
    return problems


def _check_alias(
    doc: Document,
    res: Alias,
    functions: dict[tuple[str, str], Document],
    published: dict[tuple[str, str], dict[str, Document]],
    aliases: dict[tuple[str, str, str], Document],
    names_in: Callable[[str], list[str]],
) -> list[SetProblem]:
    fn = res.spec.function_name
    if _key(doc, fn) not in functions:
        message = missing_function("spec.functionName", fn, names_in(res.namespace))
        return [SetProblem(doc, message)]
    known = published[_key(doc, fn)]
    problems = []
    targets = [("spec.functionVersion", res.spec.function_version)]
    targets += [(f"spec.routingConfig.additionalVersionWeights.{v}", v) for v in res.spec.weights()]
    for where, version in targets:
        if version != LATEST and version not in known:
            problems.append(SetProblem(doc, missing_version(where, fn, version, known)))
    name_key = (res.namespace, fn, res.alias_name)
    if name_key in aliases:
        first = aliases[name_key]
        problems.append(
            SetProblem(
                doc,
                f"spec.name: alias {res.alias_name} of {fn} is already defined by "
                f"{first.label} in {first.where}",
            )
        )
    elif not problems:
        aliases[name_key] = doc
    return problems


def _check_mapping(
    doc: Document,
    res: EventSourceMapping,
    functions: dict[tuple[str, str], Document],
    published: dict[tuple[str, str], dict[str, Document]],
    aliases: dict[tuple[str, str, str], Document],
    names_in: Callable[[str], list[str]],
) -> list[SetProblem]:
    fn, _, qualifier = res.spec.function_name.partition(":")
    where = "spec.functionName"
    if _key(doc, fn) not in functions:
        return [SetProblem(doc, missing_function(where, fn, names_in(res.namespace)))]
    if not qualifier or qualifier == LATEST:
        return []
    known = published[_key(doc, fn)]
    if is_digits(qualifier):
        if qualifier in known:
            return []
        return [SetProblem(doc, missing_version(where, fn, qualifier, known))]
    if (res.namespace, fn, qualifier) in aliases:
        return []
    names = sorted(a for ns, f, a in aliases if ns == res.namespace and f == fn)
    return [
        SetProblem(
            doc,
            f"{where}: alias {qualifier} of {fn} not found "
            f"(its aliases: {', '.join(names) or 'none'})",
        )
    ]
