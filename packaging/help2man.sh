#!/bin/sh
# help2man.sh NAME SECTION VERSION < help-text > NAME.SECTION
# Turns the man-page-shaped --help of an fr program (upper-case section titles at column 0,
# indented text) into a roff man page: NAME becomes the whatis line, every other section is
# kept as preformatted text, so the page says exactly what --help says.
name=$1 section=$2 version=$3
LC_ALL=C awk -v name="$name" -v sec="$section" -v ver="$version" '
function esc(s) {
	gsub(/\\/, "\\e", s)
	if (s ~ /^[.\x27]/) s = "\\&" s
	return s
}
BEGIN {
	printf ".TH %s %s \"\" \"fr %s\" \"fr manual\"\n", toupper(name), sec, ver
	title = ""
}
/^[A-Z][A-Z ()-]*$/ {
	if (title != "" && title != "NAME") print ".fi"
	title = $0
	printf ".SH %s\n", $0
	if (title != "NAME") print ".nf"
	next
}
{
	line = $0
	if (title == "NAME") {
		sub(/^ +/, "", line)
		if (line == "") next
		sub(/ - /, " \\- ", line)
		print line
		next
	}
	sub(/^    /, "", line)
	print esc(line)
}
END { if (title != "NAME") print ".fi" }'
