# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's version, recorded in every manifest (a unit test keeps it
equal to galaxy.yml's)."""

COLLECTION_VERSION = "0.1.0"
