// PatchdFuzz: the libFuzzer entry point (built only with -DFUZZING -sanitize=fuzzer).

#if FUZZING
import Foundation

/// The target, from PATCHD_FUZZ_TARGET, read once.
private let fuzzTarget: String = {
    let name = ProcessInfo.processInfo.environment["PATCHD_FUZZ_TARGET"] ?? ""
    guard FuzzTargets.names.contains(name) else {
        FileHandle.standardError.write(Data("PATCHD_FUZZ_TARGET must be one of: \(FuzzTargets.names.joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return name
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = FuzzTargets.run(fuzzTarget, bytes)
    return 0
}

/// libFuzzer's driver (in the -sanitize=fuzzer runtime since LLVM 11).
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// SwiftPM links debug executables on Linux with `--defsym main=<Module>_main` (so tests can
/// import them), which replaces libFuzzer's own `main`: provide that symbol and start the driver.
@_cdecl("PatchdFuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    var argc = argc
    var argv = argv
    _ = fuzzTarget
    return runDriver(&argc, &argv, fuzz)
}
#endif
