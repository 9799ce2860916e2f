/**
 * kvmtune's public API: Pulumi resources that put a KVM host into its tuned state over SSH.
 */
export { HostFacts, HostFactsArgs } from "./hostFacts";
export { ConnectionInput } from "./connectionInput";
export type {
    HostFactsData,
    NumaNodeFacts,
    BlockDeviceFacts,
    NicFacts,
    HugepagePool as HugepagePoolFacts,
} from "./host/facts";
export type { Platform, SelinuxMode, LibvirtLayout, TunedKnob, TunedSetting } from "./host/platform";
export { HugepagePool, HugepagePoolArgs, HugepagePoolCounts } from "./hugepagePool";
export { KernelCmdline, KernelCmdlineArgs, KernelCmdlineRunning } from "./kernelCmdline";
export { HostReboot, HostRebootArgs } from "./hostReboot";
export { BlockElevator, BlockElevatorArgs, SchedulerName } from "./blockElevator";
export { NumaPinnedGuest, NumaPinnedGuestArgs, GuestDiskArgs, GuestNetworkInterfaceArgs, GuestVfInterfaceArgs, CpuSetInput } from "./numaPinnedGuest";
export { KvmHost, KvmHostArgs, KvmHostApplied } from "./kvmHost";
export { VhostNetwork, VhostNetworkArgs, VhostGuestDefaults, RingSizeInput } from "./vhostNetwork";
export { SriovNic, SriovNicArgs, SriovVfArgs, SriovVfDevice, SriovVfSettings } from "./sriovNic";
