"""The test servers themselves: what lets the xdist workers' servers run side by side."""

import pytest

pytestmark = pytest.mark.integration


def test_each_mariadb_keeps_its_temporary_files_to_itself(mariadb):
    """A mariadbd that starts deletes every "#sql*" file in its tmpdir, taking them for a
    crash's leftovers. With the default /tmp shared by the workers, one worker's server start
    deleted another worker's mariadb-install-db tables mid-bootstrap, and every MariaDB test
    of that worker errored (CI at d4558a0). Each server has its own tmpdir."""
    (tmpdir,) = mariadb.admin("SELECT @@tmpdir;").split()
    assert tmpdir == str(mariadb.tmpdir), tmpdir
    assert mariadb.tmpdir.is_relative_to(mariadb.base), mariadb.tmpdir
