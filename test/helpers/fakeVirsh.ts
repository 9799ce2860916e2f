/**
 * A stand-in for `virsh` on a LocalRemote: domains are XML files in `/etc/fake-libvirt` (the
 * LocalRemote's private /etc), enough of virsh for NumaPinnedGuest's create of a stopped guest:
 * `list --all --uuid`, `dumpxml [--inactive]`, `dominfo`, `domstate`, `define`, `autostart`.
 * `define` takes a while, as libvirt's does, so creates running side by side overlap.
 */
import * as fs from "fs";
import * as path from "path";

const SCRIPT = `#!/bin/sh
[ "$1" = "-c" ] && shift 2
store=/etc/fake-libvirt
mkdir -p "$store"
find() { for f in "$store"/*.xml; do [ -f "$f" ] || continue
  u=\${f##*/}; u=\${u%.xml}
  if [ "$u" = "$1" ] || grep -q "<name>$1</name>" "$f"; then echo "$f"; return 0; fi; done; return 1; }
cmd=$1; shift
case "$cmd" in
  list) for f in "$store"/*.xml; do [ -f "$f" ] || continue; u=\${f##*/}; echo "\${u%.xml}"; done ;;
  dumpxml) [ "$1" = "--inactive" ] && shift; f=$(find "$1") || { echo "error: failed to get domain '$1'" >&2; exit 1; }; cat "$f" ;;
  dominfo) f=$(find "$1") || { echo "error: failed to get domain '$1'" >&2; exit 1; }
    u=\${f##*/}; printf 'Name: x\\nUUID: %s\\nState: shut off\\nPersistent: yes\\nAutostart: disable\\n' "\${u%.xml}" ;;
  domstate) find "$1" >/dev/null || exit 1; echo "shut off" ;;
  define) [ "$1" = "--validate" ] && shift; xml=$(cat "$1"); sleep 1
    u=$(printf '%s\\n' "$xml" | sed -n 's:.*<uuid>\\(.*\\)</uuid>.*:\\1:p')
    if [ -z "$u" ]; then u=$(cat /proc/sys/kernel/random/uuid); xml=$(printf '%s\\n' "$xml" | sed "s:^  <name>\\(.*\\)</name>:  <name>\\1</name>\\n  <uuid>$u</uuid>:"); fi
    printf '%s\\n' "$xml" > "$store/$u.xml"; echo "Domain defined" ;;
  autostart) ;;
  *) echo "fake virsh: $cmd not supported" >&2; exit 1 ;;
esac
`;

/** Writes the stand-in as `virsh` into `bin` (a LocalRemote's `pathFirst`). */
export function installFakeVirsh(bin: string): void {
    fs.writeFileSync(path.join(bin, "virsh"), SCRIPT, { mode: 0o755 });
}

/** The domains defined so far, as their XML, from the private /etc folder. */
export function definedDomains(etc: string): string[] {
    const store = path.join(etc, "fake-libvirt");
    return fs.existsSync(store) ? fs.readdirSync(store).map((f) => fs.readFileSync(path.join(store, f), "utf8")) : [];
}
