#!/usr/bin/env python3
"""Generates strata-wire's request layouts from Kafka's own JSON message specs.

The specs (`common/message/*Request.json`) ship inside the kafka-clients jar that the Java
client runner already installs (tests/clients/java). The output is checked in as
crates/strata-wire/src/schema/generated.rs. With --check, the test command regenerates it
and fails if the checked-in copy differs, so a new Kafka version or a hand edit cannot go
unnoticed.

    python3 scripts/gen-wire-schema.py [--jar PATH] [--check]
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "strata-wire", "src", "schema", "generated.rs")
JAR_GLOB = os.path.join(ROOT, "tests", "clients", "java", "target", "dependency", "kafka-clients-*.jar")

FIXED = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "uint16": "INT16",
    "int32": "INT32",
    "uint32": "INT32",
    "int64": "INT64",
    "float64": "INT64",
    "uuid": "UUID",
}
VARIABLE = {"string": "Ty::Str", "bytes": "Ty::Bytes", "records": "Ty::Bytes"}
ANY = "ANY"


def strip_comments(text):
    """Kafka's specs are JSON with // comments; drop them outside strings."""
    out, i, in_string = [], 0, False
    while i < len(text):
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\":
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def versions(spec):
    """A versions string as (min, max); None for "none"."""
    spec = spec.strip()
    if spec == "none":
        return None
    if spec.endswith("+"):
        return int(spec[:-1]), ANY
    if "-" in spec:
        low, high = spec.split("-")
        return int(low), int(high)
    return int(spec), int(spec)


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def upper(name):
    return snake(name).upper()


class Generator:
    def __init__(self):
        self.consts = []

    def ty(self, field, prefix, common):
        """The Rust expression for a field's type, emitting struct consts as needed."""
        ty = field["type"]
        array = ty.startswith("[]")
        element = ty[2:] if array else ty
        if element in FIXED:
            inner = FIXED[element]
        elif element in VARIABLE:
            inner = VARIABLE[element]
        else:
            fields = field.get("fields")
            if fields is None:
                fields = common[element]["fields"]
            const = f"{prefix}_{upper(element)}"
            self.struct(const, fields, prefix, common)
            inner = f"Ty::Struct({const})"
        return f"Ty::Array(&{inner})" if array else inner

    def struct(self, const, fields, prefix, common):
        if any(name == const for name, _ in self.consts):
            return
        entries = []
        placeholder = (const, None)
        self.consts.append(placeholder)
        for field in fields:
            present = versions(field["versions"])
            if present is None:
                continue
            ty = self.ty(field, prefix, common)
            name = snake(field["name"])
            low, high = present
            if "tag" in field:
                entries.append(f'tagged("{name}", {field["tag"]}, {low}, {ty})')
            else:
                entries.append(f'f("{name}", {low}, {high}, {ty})')
        self.consts[self.consts.index(placeholder)] = (const, entries)

    def schema(self, spec):
        prefix = upper(spec["name"])
        common = {s["name"]: s for s in spec.get("commonStructs", [])}
        self.struct(prefix, spec.get("fields", []), prefix, common)
        low, high = versions(spec["validVersions"])
        flexible = versions(spec["flexibleVersions"])
        return {
            "api_key": spec["apiKey"],
            "name": spec["name"],
            "min": low,
            "max": high,
            "flexible_from": ANY if flexible is None else flexible[0],
            "fields": prefix,
        }


def render(jar):
    with zipfile.ZipFile(jar) as archive:
        names = sorted(
            n
            for n in archive.namelist()
            if n.startswith("common/message/") and n.endswith("Request.json")
        )
        specs = [json.loads(strip_comments(archive.read(n).decode())) for n in names]
    # A request Kafka has retired ("validVersions": "none") has nothing to walk.
    specs = [s for s in specs if s.get("type") == "request" and versions(s["validVersions"])]
    specs.sort(key=lambda s: s["apiKey"])
    generator = Generator()
    schemas = [generator.schema(s) for s in specs]
    version = os.path.basename(jar)[len("kafka-clients-") : -len(".jar")]
    lines = [
        f"// @generated by scripts/gen-wire-schema.py from the message specs of kafka-clients {version}.",
        "// Do not edit: regenerate, and the test command checks the two agree.",
        "",
        "use super::{ANY, BOOL, Field, INT8, INT16, INT32, INT64, Schema, Ty, UUID, f, tagged};",
        "",
    ]
    for const, entries in generator.consts:
        lines.append(f"const {const}: &[Field] = &[{', '.join(entries)}];")
    lines.append("")
    lines.append("/// Every request Kafka defines, with the versions Kafka defines for it.")
    lines.append("pub(crate) const SCHEMAS: &[Schema] = &[")
    for s in schemas:
        lines.append(
            f"    Schema {{ api_key: {s['api_key']}, min: {s['min']}, max: {s['max']}, "
            f"flexible_from: {s['flexible_from']}, fields: {s['fields']} }}, // {s['name']}"
        )
    lines.append("];")
    source = "\n".join(lines) + "\n"
    formatted = subprocess.run(
        ["rustfmt", "--edition", "2024", "--emit", "stdout", "--quiet"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    )
    return formatted.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jar", help="a kafka-clients jar (default: the Java runner's)")
    parser.add_argument("--check", action="store_true", help="fail if the checked-in file differs")
    args = parser.parse_args()
    jar = args.jar
    if jar is None:
        found = sorted(glob.glob(JAR_GLOB))
        if not found:
            sys.exit(f"no kafka-clients jar at {JAR_GLOB}: run scripts/install-test-deps.sh first")
        jar = found[-1]
    generated = render(jar)
    if args.check:
        with open(OUT) as checked_in:
            if checked_in.read() != generated:
                with tempfile.NamedTemporaryFile("w", suffix=".rs", delete=False) as tmp:
                    tmp.write(generated)
                sys.exit(
                    f"{os.path.relpath(OUT, ROOT)} differs from what {os.path.basename(jar)} generates "
                    f"(regenerated copy: {tmp.name}); run scripts/gen-wire-schema.py"
                )
        print(f"{os.path.relpath(OUT, ROOT)} matches {os.path.basename(jar)}")
        return
    with open(OUT, "w") as out:
        out.write(generated)
    print(f"wrote {os.path.relpath(OUT, ROOT)} from {os.path.basename(jar)}")


if __name__ == "__main__":
    main()
