#!/bin/bash
# Actions of the conformance suite's controllers. Each leaves what it did in files of DIR, so a
# check can see from outside whether (and how often) an action ran and can hold one running
# until it releases it:
#   act.sh rec DIR TAG    appends its pid to DIR/runs-TAG, prints "rec TAG"
#   act.sh gate DIR TAG   the same, writes DIR/started-TAG (its pid), then waits until
#                         DIR/release-TAG exists, prints "gate TAG", writes DIR/done-TAG and exits
#                         with the code in the release file (default 0). Bounded: 120 s, or
#                         until DIR is gone (the suite ended), then exit 99.
#   act.sh big            10000 bytes on stdout ending in "END", one line on stderr
#   act.sh word DIR VALUE appends VALUE to DIR/words, prints it
mode=$1 dir=${2:-} tag=${3:-}
case $mode in
rec)
	echo "$$" >>"$dir/runs-$tag"
	echo "rec $tag"
	;;
gate)
	echo "$$" >>"$dir/runs-$tag"
	echo "$$" >"$dir/started-$tag.tmp" && mv "$dir/started-$tag.tmp" "$dir/started-$tag"
	for ((i = 0; i < 2400; i++)); do
		[ -e "$dir/release-$tag" ] && break
		[ -d "$dir" ] || exit 99
		sleep 0.05
	done
	[ -e "$dir/release-$tag" ] || exit 99
	rc=$(cat "$dir/release-$tag")
	echo "gate $tag"
	echo "$$" >"$dir/done-$tag"
	exit "${rc:-0}"
	;;
big)
	head -c 10000 /dev/zero | tr '\0' x
	echo END
	echo "a line on stderr" >&2
	;;
word)
	printf '%s\n' "$tag" >>"$dir/words"
	printf '%s\n' "$tag"
	;;
*)
	echo "act.sh: unknown mode $mode" >&2
	exit 2
	;;
esac
