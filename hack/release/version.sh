#!/usr/bin/env bash
# The version of the checked-out commit, from its git tag.
#
#   hack/release/version.sh      # stdout: 0.2.0 on a commit tagged v0.2.0,
#                                #         0.0.0-g<12 hex of the commit> on an untagged one
#
# A release tag is v<major>.<minor>.<patch>, optionally -<pre-release> (v0.3.0-rc.1).
# The version is also the image tag, so a tag with a '+' (semver build metadata, not
# allowed in an image tag) is refused, as is a release tag whose version is not the
# package's own (src/status_reporter/__init__.py): the image would log another version
# than its label. Outside a git checkout: 0.0.0-unknown.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
die() { printf 'version: %s\n' "$*" >&2; exit 1; }

commit="$(git rev-parse --verify -q HEAD 2>/dev/null)" || { echo 0.0.0-unknown; exit 0; }
# The highest version first, a release before its pre-releases (v1.0.0 before v1.0.0-rc.2).
mapfile -t tags < <(git -c versionsort.suffix=- tag --points-at HEAD --list 'v[0-9]*' --sort=-version:refname)
if ((${#tags[@]} == 0)); then
	echo "0.0.0-g${commit:0:12}"
	exit 0
fi
tag="${tags[0]}"
[[ "$tag" != *+* ]] || die "tag $tag: a '+' is not allowed in an image tag; use a pre-release (v1.2.3-rc.1)"
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$'
[[ "$tag" =~ $semver ]] || die "tag $tag is not v<major>.<minor>.<patch>[-<pre-release>]"
version="${tag#v}"
package="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/status_reporter/__init__.py)"
[[ "$version" == "$package" ]] ||
	die "tag $tag, but src/status_reporter/__init__.py says $package: set __version__ = \"$version\" in the tagged commit"
echo "$version"
