"""Registers the vfxmatte menu in Nuke's menu bar (GUI sessions only)."""

import vfxmatte_nuke.panel

vfxmatte_nuke.panel.install_menu()
