"""Make the audit log append-only in the database itself: UPDATE and DELETE raise."""

from django.db import migrations

SQLITE = [
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON booking_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON booking_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
]
SQLITE_DROP = ["DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete"]

POSTGRESQL = [
    "CREATE FUNCTION booking_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON booking_auditevent "
    "FOR EACH ROW EXECUTE FUNCTION booking_audit_append_only()",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON booking_auditevent "
    "FOR EACH STATEMENT EXECUTE FUNCTION booking_audit_append_only()",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER audit_no_truncate ON booking_auditevent",
    "DROP TRIGGER audit_append_only ON booking_auditevent",
    "DROP FUNCTION booking_audit_append_only()",
]


def _run(statements):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        for sql in statements.get(vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("booking", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE, "postgresql": POSTGRESQL}),
            _run({"sqlite": SQLITE_DROP, "postgresql": POSTGRESQL_DROP}),
        )
    ]
