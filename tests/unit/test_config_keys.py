"""Input edges of the stack configuration: unknown keys, nulls and empty strings, reserved words,
control characters and long values, and the admin never being the umami role."""

import ast
import inspect
from pathlib import Path

import pulumi
import pytest

from components import config
from components.config import KNOWN_KEYS, ConfigError, Reader
from ops.engine.offline import OfflineHandler
from tests.stack import run_dev

CONFIG_SOURCES = sorted(Path(inspect.getfile(config)).parent.glob("*.py"))  # the package, one module per section
# Reader methods (and module helpers taking the reader first) whose first string argument is a key.
READING_CALLS = {"get", "raw", "string", "integer", "boolean", "choice", "object", "secret", "missing", "read_list"}


def problems(overrides=None, remove=(), **kw) -> list[str]:
    with pytest.raises(ConfigError) as error:
        run_dev(overrides, remove=remove, **kw)
    assert isinstance(error.value, pulumi.RunError)  # printed by Pulumi without a traceback
    return error.value.problems


def one_problem(overrides=None, remove=(), **kw) -> str:
    found = problems(overrides, remove, **kw)
    assert len(found) == 1, found
    assert "\n" not in found[0]
    return found[0]


# -- the one list of known keys --

def keys_read_in_source() -> set[str]:
    """Every literal key passed to a reading call in the components/config/ package."""
    keys = set()
    for node in (n for source in CONFIG_SOURCES for n in ast.walk(ast.parse(source.read_text()))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name not in READING_CALLS:
            continue
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call):
            continue  # pulumi.Config("aws").get("region"): another namespace
        args = node.args[1:] if name == "read_list" else node.args
        if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            keys.add(args[0].value)
    return keys


def test_every_key_read_is_listed_and_every_listed_key_is_read():
    read = keys_read_in_source()
    assert read - set(KNOWN_KEYS) == set(), "read but not in KNOWN_KEYS"
    assert set(KNOWN_KEYS) - read == set(), "in KNOWN_KEYS but never read"
    assert len(KNOWN_KEYS) == len(set(KNOWN_KEYS))


def test_a_full_and_a_database_only_run_read_exactly_the_known_keys(monkeypatch):
    read: set[str] = set()
    get = Reader.get

    def recording(self, name):
        value = get(self, name)
        read.add(name)
        return value

    monkeypatch.setattr(Reader, "get", recording)
    run_dev()
    run_dev({"deployService": "false"})
    assert read == set(KNOWN_KEYS)


def test_reading_an_unlisted_key_is_a_programming_error():
    with pytest.raises(KeyError, match="not listed in components.config.KNOWN_KEYS"):
        Reader(pulumi.Config("umami")).get("schemname")


# -- unknown keys --

@pytest.mark.parametrize("key, nearest", [
    ("schemname", "schemaName"),
    ("SchemaName", "schemaName"),
    ("rolename", "roleName"),
    ("db_host", "dbHost"),
    ("adminSecretARN", "adminSecretArn"),
    ("connectionlimits", "connectionLimit"),
])
def test_an_unknown_key_is_rejected_with_the_nearest_known_key(key, nearest):
    assert one_problem({key: "analytics"}) == (
        f"umami:{key}=analytics is not a key this stack reads; did you mean umami:{nearest}?")


def test_an_unknown_key_without_a_near_one_says_where_the_keys_are():
    assert one_problem({"zzz": "1"}) == (
        "umami:zzz=1 is not a key this stack reads; see Pulumi.dev.yaml or README for the keys this stack reads")


def test_an_unknown_secret_key_never_shows_its_value():
    line = one_problem({"adminPasword": "hunter2-secret"}, secret_keys=("umami:adminPasword",))
    assert line == "umami:adminPasword=[secret] is not a key this stack reads; did you mean umami:adminPassword?"


def test_other_namespaces_are_not_ours():
    run_dev({"aws:profile": "x", "postgresql:sslmode": "disable"})


# -- YAML null and empty strings, for every key --

@pytest.mark.parametrize("key", KNOWN_KEYS)
@pytest.mark.parametrize("value, shown", [(None, "null"), ("", '""'), ("   ", '""')], ids=["null", "empty", "blank"])
def test_null_or_empty_is_an_error_naming_the_key(key, value, shown):
    secret = key == "adminPassword"
    found = problems({key: value}, secret_keys=(f"umami:{key}",) if secret else ())
    line = f"umami:{key}={'[secret]' if secret else shown} is null or empty; set a value, or remove the key to use the default"
    assert line in found
    assert f"umami:{key} is required" not in found  # one line for the key, not two
    assert sum(p.startswith(f"umami:{key}=") for p in found) == 1, found


# -- reserved words --

@pytest.mark.parametrize("key, value, expected", [
    ("schemaName", "select", "umami:schemaName=select is a reserved SQL key word in PostgreSQL; use a dedicated name such as umami"),
    ("schemaName", "user", "umami:schemaName=user is a reserved SQL key word in PostgreSQL"),
    ("schemaName", "left", "umami:schemaName=left is a reserved SQL key word in PostgreSQL"),
    ("roleName", "select", "umami:roleName=select is a reserved SQL key word in PostgreSQL; use a dedicated name such as umami_user"),
    ("roleName", "current_user", "umami:roleName=current_user is a reserved SQL key word in PostgreSQL"),
    ("roleName", "none", "umami:roleName=none is a reserved role; use a dedicated role such as umami_user"),
    ("roleName", "public", "umami:roleName=public is a reserved role"),
])
def test_reserved_words_are_refused_as_schema_or_role(key, value, expected):
    assert one_problem({key: value}).startswith(expected)


@pytest.mark.parametrize("key, value", [("schemaName", "none"), ("schemaName", "analytics"), ("roleName", "analytics_ro"),
                                        ("roleName", "name")])
def test_non_reserved_names_are_accepted(key, value):
    run_dev({key: value})


# -- what an error line shows of a value --

def test_control_characters_are_escaped_in_the_line():
    line = one_problem({"schemaName": "um\x07a\x1bmi\nx"})
    assert line.startswith("umami:schemaName=um\\x07a\\x1bmi\\nx is not a plain PostgreSQL identifier")
    assert not any(ord(c) < 32 or c == "\x7f" for c in line)


def test_invisible_and_line_separating_unicode_is_escaped():
    line = one_problem({"dbHost": "db\u200b.example.com\u2028x"})
    assert line.startswith("umami:dbHost=db\\u200b.example.com\\u2028x is not a hostname")


def test_long_values_are_cut_with_an_ellipsis():
    line = one_problem({"dbHost": "a" * 5000 + "!"})
    assert line == f"umami:dbHost={'a' * 120}… is not a hostname; use the Aurora cluster endpoint"


def test_a_tag_key_with_control_characters_is_escaped():
    line = one_problem({"tags": {"Team\x00": "x", "CostCenter": "analytics"}})
    assert "\x00" not in line and "Team\\x00" in line


def test_list_entries_are_escaped_and_cut_too():
    line = one_problem({"applicationRoles": ["app\x07user" + "x" * 200]})
    assert line.startswith("umami:applicationRoles=app\\x07user") and line.count("x") < 130 and "…" in line


def test_every_problem_is_one_line_at_once():
    found = problems({"schemname": "a", "dbPort": "", "roleName": "select", "dbHost": "x\ny!"})
    assert len(found) == 4 and all("\n" not in p for p in found)


# -- the role is never the admin, also when the admin comes from the secret --

def test_role_equal_to_the_admin_from_the_secret_fails_in_one_line():
    handler = OfflineHandler(admin_secret={"username": "umami_user", "password": "x"})
    with pytest.raises(pulumi.RunError) as error:
        run_dev(handler=handler)
    message = str(error.value)
    assert message == ("umami:roleName=umami_user is the admin user of umami:adminSecretArn "
                       "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-0a1b2c3d-AbCdEf; "
                       "use a dedicated role such as umami_user")


def test_another_admin_from_the_secret_is_fine_once_configured():
    # A preview reads no secret, so the admin's name is config (umami:adminUsername, default postgres).
    handler = OfflineHandler(admin_secret={"username": "master", "password": "x"})
    assert run_dev({"adminUsername": "master"}, handler=handler).outputs["dbAdminRole"] == "master"
