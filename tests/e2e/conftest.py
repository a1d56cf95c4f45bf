"""The browser tests' fixtures (`tests.e2e.browser`), shared by every module here: the two test seasons are
built once per session for the viewer tests and the QGIS test alike."""

from tests.e2e.browser import browser, viewer, viewer_archive, viewer_data, viewer_server  # noqa: F401 (fixtures)
