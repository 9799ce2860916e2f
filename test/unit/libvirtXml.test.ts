/**
 * The domain XML builder and parser: escaping (property-based), libvirt's own schema check
 * (`virt-xml-validate FILE domain`), and normalization of `virsh dumpxml` output so libvirt's
 * additions never read as changes.
 */
import * as assert from "assert";
import fc from "fast-check";
import { buildDomainXml, GuestSpec, OWNER_NS, parseCpuset, parseDomainXml, pciAddressOf, projectLive } from "../../resources/libvirt/domain";
import { el, escapeAttr, parse, serialize } from "../../resources/libvirt/xml";
import { virtXmlValidate } from "../helpers/virtXmlValidate";

const full: GuestSpec = {
    name: "db1",
    vcpus: 4,
    memoryMiB: 4096,
    cpuMode: "host-passthrough",
    numa: { nodeset: [1], mode: "strict" },
    vcpuPins: [[8], [9], [10], [11]],
    emulatorPin: [12, 13],
    iothreads: 2,
    iothreadPins: [[12], [13]],
    hugepages: "1G",
    disks: [
        { source: { path: "/var/lib/libvirt/images/db1.img" }, target: "vda", bus: "virtio", format: "raw", cache: "none", io: "native", iothread: 1 },
        { source: { path: "/dev/disk/by-id/nvme-data1" }, target: "vdb", bus: "virtio", format: "raw", cache: "none", io: "io_uring", iothread: 2 },
        { source: { pool: "default", volume: "db1-logs.qcow2" }, target: "sda", bus: "scsi", format: "qcow2", cache: "directsync", io: "threads" },
    ],
    interfaces: [
        { network: "vhost-net0", queues: 4, rxQueueSize: 1024, txQueueSize: 1024 },
        { network: "default", mac: "52:54:00:12:34:56" },
        { pciAddress: "0000:03:10.2", mac: "52:54:00:aa:bb:cc", vlan: 100 },
    ],
};

const minimal: GuestSpec = {
    name: "tiny", vcpus: 1, memoryMiB: 32, cpuMode: "default", numa: null, vcpuPins: [[]], emulatorPin: null,
    iothreads: 0, iothreadPins: [], hugepages: null, disks: [], interfaces: [],
};

const validate = (xml: string) => virtXmlValidate(xml, "domain");

describe("XML builder and parser", () => {
    it("escapes attribute and text values so they cannot open elements or end attributes", () => {
        fc.assert(
            fc.property(fc.string({ unit: "grapheme", maxLength: 40 }).filter((s) => !/[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/.test(s)), (s) => {
                const doc = serialize(el("root", { a: s, b: "x" }, el("t", {}, s)));
                const back = parse(doc);
                assert.strictEqual(back.attrs.a, s);
                assert.strictEqual(back.attrs.b, "x");
                assert.strictEqual(back.children.length, 1);
                // Text that is only white space is layout, and the parser drops it.
                if (s.trim() !== "") assert.deepStrictEqual((back.children[0] as { children: string[] }).children, [s]);
            }),
        );
        assert.strictEqual(escapeAttr(`'"<>&\n`), "&apos;&quot;&lt;&gt;&amp;&#10;");
        assert.throws(() => serialize(el("x", { a: "\u0001" })), /control characters/);
        assert.throws(() => el("bad name"), /not an XML element name/);
    });

    it("parses comments, CDATA, entities, prolog; refuses malformed documents", () => {
        const d = parse(`<?xml version="1.0"?>\n<!-- c --><a x="1 &amp; 2" y='&#65;&#x42;'><![CDATA[<raw>]]><!-- in --><b/>tail</a>`);
        assert.deepStrictEqual(d.attrs, { x: "1 & 2", y: "AB" });
        assert.strictEqual(d.children[0], "<raw>");
        assert.throws(() => parse("<a><b></a>"), /<\/a> closes <b>/);
        assert.throws(() => parse("<a x='1' x='2'/>"), /given twice/);
        assert.throws(() => parse("<a/><b/>"), /content after the root/);
        assert.throws(() => parse("<a>&nbsp;</a>"), /unknown XML entity/);
    });

    it("parses libvirt cpusets, with ranges and exclusions", () => {
        assert.deepStrictEqual(parseCpuset("0-3,^2,8"), [0, 1, 3, 8]);
        assert.deepStrictEqual(parseCpuset("5"), [5]);
        assert.throws(() => parseCpuset("a-b"), /not a cpuset/);
    });
});

describe("domain XML", function () {
    this.timeout(60_000); // virt-xml-validate runs xmllint: slow on a busy machine
    it("passes libvirt's virt-xml-validate, full and minimal", () => {
        for (const spec of [full, minimal]) {
            const r = validate(buildDomainXml(spec, "NumaPinnedGuest g (kvmtune/dev)", "5d3435a2-7e0d-41ae-9b93-5edca55574ac"));
            assert.ok(r.ok, r.out);
            assert.match(r.out, /validates/);
        }
    });

    it("passes virt-xml-validate with hostile-looking values escaped", () => {
        const xml = buildDomainXml({ ...minimal, name: "a&b" }, `owner <x> 'q' "d" & more`);
        assert.ok(validate(xml).ok);
        assert.strictEqual(parseDomainXml(xml).owner, `owner <x> 'q' "d" & more`);
    });

    it("reads back what it builds: the owned spec round-trips exactly", () => {
        for (const spec of [full, minimal]) {
            const parsed = parseDomainXml(buildDomainXml(spec, "me"));
            assert.deepStrictEqual(parsed.spec, spec);
            assert.strictEqual(parsed.owner, "me");
        }
    });

    it("normalizes virsh dumpxml output: libvirt's additions are not changes", () => {
        // What libvirt 9.0 prints for `full` once defined and running: prefixes re-declared in
        // double quotes, machine and emulator filled in, addresses, aliases, generated MACs,
        // controllers, the network's bridge and port, the live cpu expansion.
        const dumped = `<domain type='kvm' id='3'>
  <name>db1</name>
  <uuid>5d3435a2-7e0d-41ae-9b93-5edca55574ac</uuid>
  <metadata>
    <kt:owner xmlns:kt="${OWNER_NS}">me</kt:owner>
    <other:thing xmlns:other="urn:someone-else">x</other:thing>
  </metadata>
  <memory unit='GiB'>4</memory>
  <currentMemory unit='KiB'>4194304</currentMemory>
  <memoryBacking>
    <hugepages>
      <page size='1048576' unit='KiB'/>
    </hugepages>
  </memoryBacking>
  <vcpu placement='static'>4</vcpu>
  <iothreads>2</iothreads>
  <cputune>
    <vcpupin vcpu='0' cpuset='8'/>
    <vcpupin vcpu='1' cpuset='9'/>
    <vcpupin vcpu='2' cpuset='10'/>
    <vcpupin vcpu='3' cpuset='11'/>
    <emulatorpin cpuset='12-13'/>
    <iothreadpin iothread='1' cpuset='12'/>
    <iothreadpin iothread='2' cpuset='13'/>
  </cputune>
  <numatune>
    <memory mode='strict' nodeset='1'/>
  </numatune>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native' iothread='1'/>
      <source file='/var/lib/libvirt/images/db1.img' index='3'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='io_uring' iothread='2'/>
      <source dev='/dev/disk/by-id/nvme-data1' index='2'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <alias name='virtio-disk1'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2' cache='directsync' io='threads'/>
      <source pool='default' volume='db1-logs.qcow2' index='1'/>
      <target dev='sda' bus='scsi'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'/>
    <controller type='pci' index='0' model='pci-root'/>
    <controller type='scsi' index='0' model='lsilogic'/>
    <interface type='network'>
      <mac address='52:54:00:9f:3e:01'/>
      <source network='vhost-net0' portid='c2a5b5a1-2f43-4d2a-9d0c-33a1a8d0f1e2' bridge='virbr1'/>
      <target dev='vnet0'/>
      <model type='virtio'/>
      <driver name='vhost' queues='4' rx_queue_size='1024' tx_queue_size='1024'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <model type='virtio'/>
      <driver name='vhost'/>
    </interface>
    <interface type='hostdev' managed='yes'>
      <mac address='52:54:00:AA:BB:CC'/>
      <driver name='vfio'/>
      <source>
        <address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x2'/>
      </source>
      <vlan>
        <tag id='100'/>
      </vlan>
      <alias name='hostdev0'/>
    </interface>
    <input type='mouse' bus='ps2'/>
    <audio id='1' type='none'/>
    <memballoon model='none'/>
  </devices>
  <seclabel type='dynamic' model='dac' relabel='yes'/>
</domain>`;
        const p = parseDomainXml(dumped);
        assert.strictEqual(p.owner, "me");
        assert.strictEqual(p.uuid, "5d3435a2-7e0d-41ae-9b93-5edca55574ac");
        assert.strictEqual(p.otherDevices, 1, "the cdrom is not ours to compare");
        assert.deepStrictEqual(projectLive(p.spec, full), full);
        // A MAC the user did not ask for (libvirt generated it) stays out of the comparison.
        const noMac = { ...full, interfaces: [full.interfaces[0], full.interfaces[1], full.interfaces[2]] };
        assert.strictEqual((projectLive(p.spec, noMac).interfaces[0] as { mac?: string }).mac, undefined);
    });

    it("treats a mark in another namespace, or none, as not ours", () => {
        const foreign = buildDomainXml(minimal, "me").replace(OWNER_NS, "urn:not-kvmtune");
        assert.strictEqual(parseDomainXml(foreign).owner, null);
        assert.strictEqual(parseDomainXml("<domain type='kvm'><name>x</name><memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>").owner, null);
    });

    it("reads QEMU's defaults for unset disk cache and io, and PCI addresses in any case", () => {
        const xml = `<domain type='kvm'><name>x</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>
          <devices><disk type='file' device='disk'><source file='/a.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;
        const d = parseDomainXml(xml).spec.disks[0];
        assert.deepStrictEqual([d.cache, d.io, d.format], ["writeback", "threads", "raw"]);
        assert.strictEqual(parseDomainXml(xml).spec.memoryMiB, 64);
        assert.strictEqual(pciAddressOf(el("address", { type: "pci", domain: "0x0000", bus: "0x0A", slot: "0x1f", function: "0x7" })), "0000:0a:1f.7");
    });
});
