#!/bin/sh
# @DISPLAY_NAME@: rendered by cgsplit-install into
# <steam root>/compatibilitytools.d/@DIR@/ (rewritten by every install,
# removed by --uninstall; edits here are lost).
#
# Steam runs `<this directory>/cgsplit-chain VERB COMMAND...` (toolmanifest.vdf
# commandline "/cgsplit-chain %verb%"), inside the Steam Linux Runtime
# container when the entry requires one. The shim next to this file joins
# the game's cgroup scope for run/waitforexitandrun and execs Proton's own
# entry point with the same verb and command; any other verb goes to Proton
# unchanged (--chain).
next=@NEXT@
name=@NAME@
mount=@MOUNT@
if [ ! -e "$next" ]; then
	printf '%s\n' "cgsplit: $next ($name) is not visible here. A Steam Linux Runtime container shares only your home, the Steam directory, the game's and the tools' libraries and STEAM_COMPAT_MOUNTS: add  STEAM_COMPAT_MOUNTS=$mount %command%  to the game's launch options, or run cgsplit-install again if that Proton was moved or removed." >&2
	exit 127
fi
exec "${0%/*}/@SHIM@" --chain compat "$1" -- "$next" "$@"
