/**
 * Booting images under QEMU: the launcher (qemu.ts), stock Debian kernels (kernel.ts) and the host
 * tools both drive (tools.ts). Re-exported from `vmimg/export` for launchers that import from there.
 */
export { bootImage, qemuCommand, parseExitStatus, parseGuestOutput, type BootOptions, type BootResult, type BootArch, type RootKind } from './qemu.js';
export { ensureKernel, findCachedKernel, kernelPackage, extractVmlinuz, defaultKernelDir, type KernelOptions, type Kernel } from './kernel.js';
export { GuestOutputSplitter, stripTerminalEscapes, bootFailureCause } from './console.js';
export { checkKernelFile, kernelKind, type KernelKind } from './kernel-file.js';
export { checkMemory, initramfsMemoryMiB, MIN_MEMORY_MIB } from './memory.js';
export { ensureModules, moduleClosure, modinfoDepends, extractModules, DISK_MODULES, type ModuleSet } from './modules.js';
export { ensureBusybox, extractBusybox } from './busybox.js';
export { stageOneInit, writeStageOne, moduleRelease, ROOT_DEVICE } from './stage-one.js';
export { checkRootOptions, chooseRoot, type RootOptions } from './root.js';
