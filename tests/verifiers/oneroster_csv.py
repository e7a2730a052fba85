"""Checks a OneRoster 1.2 CSV zip against the rules of the 1EdTech binding.

Source: 1EdTech "OneRoster: CSV Binding", Spec Version 1.2.1, Final Release,
Document Version 5, 22 August 2023 (https://www.imsglobal.org/spec/oneroster/
v1p2/bind/csv/), read with the OneRoster 1.2 Rostering and Gradebook
information models it binds. The rules below are written from that document,
section by section; no part of them comes from the software under test.

- "CSV File Format" (the binding's general rules): RFC 4180 files in UTF-8
  (a BOM is tolerated); no carriage return or line feed inside a value; header
  names case-sensitive, every defined column present, in the defined order,
  extension columns named `metadata.*` only to the right of them; header
  names unique; a file without data rows is not permitted.
- "Manifest File": columns `propertyName,value`; `manifest.version` is
  `1.0`, `oneroster.version` is `1.2`; one `file.<name>` row for each data
  file of the binding, valued `absent`, `bulk` or `delta`; `source.*`
  properties optional. A file declared `absent` is not in the zip; a file
  declared `bulk` or `delta` is.
- "Processing Modes": in `bulk` files `status` and `dateLastModified` are
  empty; in `delta` files both are given, `status` being `active` or
  `tobedeleted`, `dateLastModified` a DateTime.
- Data types: GUID (sourcedId) non-empty, unique within its file, made of the
  characters the binding permits in an identifier (the URL-safe "unreserved"
  characters of RFC 3986: letters, digits, `-`, `.`, `_`, `~`, since
  sourcedIds are also path segments of the REST binding); Date `YYYY-MM-DD`;
  DateTime ISO 8601 with a time zone (`Z` or an offset); Year `YYYY`;
  Boolean `true`/`false`; Float a decimal number; lists of GUIDs or strings
  comma-separated inside one quoted value.
- The per-file tables (academicSessions ... users): the columns, which of
  them are required (never empty), each value's type and the enumerations
  (role, roleType, classType, org type, session type, scoreStatus, ...).
- References: in a `bulk` zip every GUID reference resolves to a row of the
  zip. In a `delta` zip a reference may name an entity the receiver already
  holds from an earlier exchange, so a reference into a file that is
  `absent` or `delta` is not checked here; a reference into a `bulk` file of
  the same zip must resolve.

Usage: oneroster_csv.py ZIP
Prints every violation, one a line, and exits 1 if there is any; prints
"N files checked, 0 problems" and exits 0 otherwise.
"""

import csv
import io
import re
import sys
import zipfile

MODES = {"absent", "bulk", "delta"}
STATUSES = {"active", "tobedeleted"}

GUID = re.compile(r"^[A-Za-z0-9._~-]+$")
DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
DATETIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
YEAR = re.compile(r"^\d{4}$")
FLOAT = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# Column types: ("guid", target file) a reference, ("guids", target) a list
# of them, ("enum", {...}), ("enums", {...}) a list, and the scalars below.
STRING, DATE_T, DATETIME_T, YEAR_T, BOOL, FLOATT, STRINGS = (
    "string",
    "date",
    "datetime",
    "year",
    "boolean",
    "float",
    "strings",
)


def ref(target):
    return ("guid", target)


def refs(target):
    return ("guids", target)


def enum(*values):
    return ("enum", set(values))


ROLE_ENROLLMENT = enum("administrator", "proctor", "student", "teacher")
ROLE_USER = enum(
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
)

# file -> [(column, type, required)], in the binding's column order. The
# first three columns (sourcedId, status, dateLastModified) are common to
# every data file and checked apart.
FILES = {
    "academicSessions": [
        ("title", STRING, True),
        ("type", enum("gradingPeriod", "semester", "schoolYear", "term"), True),
        ("startDate", DATE_T, True),
        ("endDate", DATE_T, True),
        ("parentSourcedId", ref("academicSessions"), False),
        ("schoolYear", YEAR_T, True),
    ],
    "categories": [
        ("title", STRING, True),
        ("weight", FLOATT, False),
    ],
    "classes": [
        ("title", STRING, True),
        ("grades", STRINGS, False),
        ("courseSourcedId", ref("courses"), True),
        ("classCode", STRING, False),
        ("classType", enum("homeroom", "scheduled"), True),
        ("location", STRING, False),
        ("schoolSourcedId", ref("orgs"), True),
        ("termSourcedIds", refs("academicSessions"), True),
        ("subjects", STRINGS, False),
        ("subjectCodes", STRINGS, False),
        ("periods", STRINGS, False),
    ],
    "classResources": [
        ("title", STRING, False),
        ("classSourcedId", ref("classes"), True),
        ("resourceSourcedId", ref("resources"), True),
    ],
    "courses": [
        ("schoolYearSourcedId", ref("academicSessions"), False),
        ("title", STRING, True),
        ("courseCode", STRING, False),
        ("grades", STRINGS, False),
        ("orgSourcedId", ref("orgs"), True),
        ("subjects", STRINGS, False),
        ("subjectCodes", STRINGS, False),
    ],
    "courseResources": [
        ("title", STRING, False),
        ("courseSourcedId", ref("courses"), True),
        ("resourceSourcedId", ref("resources"), True),
    ],
    "demographics": [
        ("birthDate", DATE_T, False),
        ("sex", enum("male", "female", "other", "unspecified"), False),
        ("americanIndianOrAlaskaNative", BOOL, False),
        ("asian", BOOL, False),
        ("blackOrAfricanAmerican", BOOL, False),
        ("nativeHawaiianOrOtherPacificIslander", BOOL, False),
        ("white", BOOL, False),
        ("demographicRaceTwoOrMoreRaces", BOOL, False),
        ("hispanicOrLatinoEthnicity", BOOL, False),
        ("countryOfBirthCode", STRING, False),
        ("stateOfBirthAbbreviation", STRING, False),
        ("cityOfBirth", STRING, False),
        ("publicSchoolResidenceStatus", STRING, False),
    ],
    "enrollments": [
        ("classSourcedId", ref("classes"), True),
        ("schoolSourcedId", ref("orgs"), True),
        ("userSourcedId", ref("users"), True),
        ("role", ROLE_ENROLLMENT, True),
        ("primary", BOOL, False),
        ("beginDate", DATE_T, False),
        ("endDate", DATE_T, False),
    ],
    "lineItemLearningObjectiveIds": [
        ("lineItemSourcedId", ref("lineItems"), True),
        ("source", enum("case", "unknown"), True),
        ("learningObjectiveId", STRING, True),
    ],
    "lineItems": [
        ("title", STRING, True),
        ("description", STRING, False),
        # Dates of a line item; a DateTime is read as a Date with a time.
        ("assignDate", "date_or_datetime", True),
        ("dueDate", "date_or_datetime", True),
        ("classSourcedId", ref("classes"), True),
        ("categorySourcedId", ref("categories"), True),
        ("academicSessionSourcedId", ref("academicSessions"), True),
        ("resultValueMin", FLOATT, False),
        ("resultValueMax", FLOATT, False),
        ("schoolSourcedId", ref("orgs"), False),
    ],
    "lineItemScoreScales": [
        ("lineItemSourcedId", ref("lineItems"), True),
        ("scoreScaleSourcedId", ref("scoreScales"), True),
    ],
    "orgs": [
        ("name", STRING, True),
        ("type", enum("department", "school", "district", "local", "state", "national"), True),
        ("identifier", STRING, False),
        ("parentSourcedId", ref("orgs"), False),
    ],
    "resources": [
        ("vendorResourceId", STRING, True),
        ("title", STRING, False),
        ("roles", ("enums", ROLE_USER[1]), False),
        ("importance", enum("primary", "secondary"), False),
        ("vendorId", STRING, False),
        ("applicationId", STRING, False),
    ],
    "resultLearningObjectiveIds": [
        ("resultSourcedId", ref("results"), True),
        ("source", enum("case", "unknown"), True),
        ("learningObjectiveId", STRING, True),
        ("score", FLOATT, False),
        ("textScore", STRING, False),
    ],
    "results": [
        ("lineItemSourcedId", ref("lineItems"), True),
        ("studentSourcedId", ref("users"), True),
        (
            "scoreStatus",
            enum("exempt", "fully graded", "not submitted", "partially graded", "submitted"),
            True,
        ),
        ("score", FLOATT, False),
        ("scoreDate", DATE_T, True),
        ("comment", STRING, False),
        ("textScore", STRING, False),
        ("classSourcedId", ref("classes"), False),
        ("inProgress", BOOL, False),
        ("incomplete", BOOL, False),
        ("late", BOOL, False),
        ("missing", BOOL, False),
    ],
    "resultScoreScales": [
        ("resultSourcedId", ref("results"), True),
        ("scoreScaleSourcedId", ref("scoreScales"), True),
    ],
    "roles": [
        ("userSourcedId", ref("users"), True),
        ("roleType", enum("primary", "secondary"), True),
        ("role", ROLE_USER, True),
        ("beginDate", DATE_T, False),
        ("endDate", DATE_T, False),
        ("orgSourcedId", ref("orgs"), True),
        ("userProfileSourcedId", ref("userProfiles"), False),
    ],
    "scoreScales": [
        ("title", STRING, True),
        ("type", STRING, True),
        ("courseSourcedId", ref("courses"), False),
        ("classSourcedId", ref("classes"), True),
        ("scoreScaleValue", STRING, True),
    ],
    "userProfiles": [
        ("userSourcedId", ref("users"), True),
        ("profileType", STRING, True),
        ("vendorId", STRING, True),
        ("applicationId", STRING, False),
        ("description", STRING, False),
        ("credentialType", STRING, True),
        ("username", STRING, True),
        ("password", STRING, False),
    ],
    "userResources": [
        ("title", STRING, False),
        ("userSourcedId", ref("users"), True),
        ("resourceSourcedId", ref("resources"), True),
    ],
    "users": [
        ("enabledUser", BOOL, True),
        ("username", STRING, True),
        ("userIds", STRINGS, False),
        ("givenName", STRING, True),
        ("familyName", STRING, True),
        ("middleName", STRING, False),
        ("identifier", STRING, False),
        ("email", STRING, False),
        ("sms", STRING, False),
        ("phone", STRING, False),
        ("agentSourcedIds", refs("users"), False),
        ("grades", STRINGS, False),
        ("password", STRING, False),
        ("userMasterIdentifier", STRING, False),
        ("preferredGivenName", STRING, False),
        ("preferredMiddleName", STRING, False),
        ("preferredFamilyName", STRING, False),
        ("primaryOrgSourcedId", ref("orgs"), False),
        ("pronouns", STRING, False),
    ],
}

COMMON = ["sourcedId", "status", "dateLastModified"]


class Report:
    def __init__(self):
        self.problems = []

    def add(self, where, message):
        self.problems.append(f"{where}: {message}")


def read_csv(report, name, data):
    """The rows of a file (header first), or None if it is not valid CSV text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        report.add(name, f"not UTF-8: {e}")
        return None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as e:
        report.add(name, f"not RFC 4180 CSV: {e}")
        return None
    for i, row in enumerate(rows, start=1):
        for value in row:
            if "\r" in value or "\n" in value:
                report.add(f"{name} row {i}", f"a line break inside the value {value!r}")
    return rows


def split_list(value):
    return [item.strip() for item in value.split(",")]


def check_value(report, where, column, kind, value):
    """Checks one non-empty value against its type."""
    if isinstance(kind, tuple):
        tag, arg = kind
        if tag == "guid":
            if not GUID.match(value):
                report.add(where, f"{column} {value!r} has characters a GUID may not contain")
        elif tag == "guids":
            for item in split_list(value):
                if not item or not GUID.match(item):
                    report.add(where, f"{column} item {item!r} is not a GUID")
        elif tag == "enum":
            if value not in arg:
                report.add(where, f"{column} {value!r} is not one of {sorted(arg)}")
        elif tag == "enums":
            for item in split_list(value):
                if item not in arg:
                    report.add(where, f"{column} item {item!r} is not one of {sorted(arg)}")
        return
    if kind == DATE_T and not DATE.match(value):
        report.add(where, f"{column} {value!r} is not a Date (YYYY-MM-DD)")
    elif kind == DATETIME_T and not DATETIME.match(value):
        report.add(where, f"{column} {value!r} is not a DateTime with a time zone")
    elif kind == "date_or_datetime" and not (DATE.match(value) or DATETIME.match(value)):
        report.add(where, f"{column} {value!r} is neither a Date nor a DateTime")
    elif kind == YEAR_T and not YEAR.match(value):
        report.add(where, f"{column} {value!r} is not a year (YYYY)")
    elif kind == BOOL and value not in ("true", "false"):
        report.add(where, f"{column} {value!r} is not true or false")
    elif kind == FLOATT and not FLOAT.match(value):
        report.add(where, f"{column} {value!r} is not a number")
    elif kind == STRINGS and any(not item for item in split_list(value)):
        report.add(where, f"{column} {value!r} has an empty list item")


def check_manifest(report, names, data):
    """The processing mode of each data file, from manifest.csv."""
    rows = read_csv(report, "manifest.csv", data)
    if rows is None:
        return {}
    if not rows or rows[0] != ["propertyName", "value"]:
        report.add("manifest.csv", f"header must be propertyName,value, not {rows[0] if rows else 'missing'}")
        return {}
    props = {}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            report.add(f"manifest.csv row {i}", f"{len(row)} values, not 2")
            continue
        key, value = row
        if key in props:
            report.add(f"manifest.csv row {i}", f"{key} is given twice")
        if not value:
            report.add(f"manifest.csv row {i}", f"{key} has no value")
        props[key] = value
    if props.get("manifest.version") != "1.0":
        report.add("manifest.csv", f"manifest.version must be 1.0, not {props.get('manifest.version')!r}")
    if props.get("oneroster.version") != "1.2":
        report.add("manifest.csv", f"oneroster.version must be 1.2, not {props.get('oneroster.version')!r}")
    known = {"manifest.version", "oneroster.version"} | {f"file.{f}" for f in FILES}
    for key in props:
        if key not in known and not key.startswith("source."):
            report.add("manifest.csv", f"unknown property {key}")
    modes = {}
    for f in FILES:
        mode = props.get(f"file.{f}")
        if mode is None:
            report.add("manifest.csv", f"file.{f} is missing")
            continue
        if mode not in MODES:
            report.add("manifest.csv", f"file.{f} is {mode!r}, not absent, bulk or delta")
            continue
        modes[f] = mode
        present = f"{f}.csv" in names
        if mode == "absent" and present:
            report.add("manifest.csv", f"{f}.csv is in the zip but declared absent")
        if mode != "absent" and not present:
            report.add("manifest.csv", f"{f}.csv is declared {mode} but not in the zip")
    return modes


def check_file(report, name, mode, rows):
    """Checks one data file; returns its rows as column -> value maps."""
    spec = FILES[name]
    file = f"{name}.csv"
    expected = COMMON + [c for c, _, _ in spec]
    if not rows:
        report.add(file, "no header row")
        return []
    header = rows[0]
    if len(set(header)) != len(header):
        report.add(file, "header names are not unique")
    if header[: len(expected)] != expected:
        report.add(file, f"header must begin with the binding's columns in order:\n  {expected}\n  got {header}")
    for extra in header[len(expected) :]:
        if not extra.startswith("metadata."):
            report.add(file, f"column {extra!r} is not a binding column nor a metadata.* extension")
    if len(rows) == 1:
        report.add(file, "a file without data rows is not permitted")
    types = dict([(c, (k, r)) for c, k, r in spec])
    out = []
    ids = set()
    for i, row in enumerate(rows[1:], start=2):
        where = f"{file} row {i}"
        if len(row) != len(header):
            report.add(where, f"{len(row)} values under {len(header)} headers")
            continue
        values = dict(zip(header, row))
        out.append(values)
        sid = values.get("sourcedId", "")
        if not sid:
            report.add(where, "sourcedId is empty")
        elif not GUID.match(sid):
            report.add(where, f"sourcedId {sid!r} has characters a GUID may not contain")
        elif sid in ids:
            report.add(where, f"sourcedId {sid!r} appears twice")
        ids.add(sid)
        status, modified = values.get("status", ""), values.get("dateLastModified", "")
        if mode == "bulk":
            if status or modified:
                report.add(where, "status and dateLastModified must be empty in a bulk file")
        else:
            if status not in STATUSES:
                report.add(where, f"status {status!r} must be active or tobedeleted in a delta file")
            if not DATETIME.match(modified):
                report.add(where, f"dateLastModified {modified!r} must be a DateTime in a delta file")
        for column, (kind, required) in types.items():
            value = values.get(column)
            if value is None:
                continue
            if value == "":
                if required:
                    report.add(where, f"{column} is required but empty")
                continue
            if value != value.strip():
                report.add(where, f"{column} {value!r} has leading or trailing spaces")
            check_value(report, where, column, kind, value)
    return out


def check_references(report, modes, tables):
    for name, spec in FILES.items():
        for column, kind, _ in spec:
            if not (isinstance(kind, tuple) and kind[0] in ("guid", "guids")):
                continue
            target = kind[1]
            # A bulk file, or a reference into one, stands for the whole set:
            # it resolves within the zip. A delta file's reference into an
            # absent or delta file may name what the receiver already holds.
            if modes.get(name) != "bulk" and modes.get(target) != "bulk":
                continue
            known = {r.get("sourcedId") for r in tables.get(target, [])}
            for i, row in enumerate(tables.get(name, []), start=2):
                value = row.get(column, "")
                items = split_list(value) if kind[0] == "guids" else [value]
                for item in items:
                    if item and item not in known:
                        report.add(f"{name}.csv row {i}", f"{column} {item!r} is not in {target}.csv")


def check_zip(path):
    report = Report()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        report.add(path, f"not a zip: {e}")
        return report, 0
    with archive:
        names = archive.namelist()
        for n in names:
            if "/" in n or not n.endswith(".csv"):
                report.add(n, "the zip holds CSV files at its root only")
            elif n != "manifest.csv" and n[: -len(".csv")] not in FILES:
                report.add(n, "not a file of the binding")
        if "manifest.csv" not in names:
            report.add(path, "no manifest.csv")
            return report, len(names)
        modes = check_manifest(report, set(names), archive.read("manifest.csv"))
        tables = {}
        for name, mode in modes.items():
            if mode == "absent" or f"{name}.csv" not in names:
                continue
            rows = read_csv(report, f"{name}.csv", archive.read(f"{name}.csv"))
            if rows is not None:
                tables[name] = check_file(report, name, mode, rows)
        check_references(report, modes, tables)
    return report, len(names)


def main(argv):
    if len(argv) != 2:
        print("usage: oneroster_csv.py ZIP", file=sys.stderr)
        return 2
    report, files = check_zip(argv[1])
    for problem in report.problems:
        print(problem)
    print(f"{files} files checked, {len(report.problems)} problems")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
