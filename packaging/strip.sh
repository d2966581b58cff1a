#!/bin/sh
# strip.sh FILE...: strips as dh_strip does (no .comment/.note sections, no unneeded
# symbols). CMake's install --strip calls it (CMAKE_STRIP, set by build-debs.sh); FR_STRIP
# names the strip of the target architecture.
exec "${FR_STRIP:-strip}" --remove-section=.comment --remove-section=.note --strip-unneeded "$@"
