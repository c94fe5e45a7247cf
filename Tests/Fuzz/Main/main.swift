import FuzzTargets
import Foundation

/// The fuzz targets as one program. Built by `make fuzz` (with -sanitize=fuzzer,address), it is
/// libFuzzer: WORLDOS_FUZZ_TARGET names the target and the arguments are libFuzzer's (a crash it
/// saved replays with `WORLDOS_FUZZ_TARGET=T .build-fuzz/release/worldos-fuzz FILE`). Built
/// plainly, `worldos-fuzz TARGET FILE...` runs inputs through a target without the fuzzer.
let target = ProcessInfo.processInfo.environment["WORLDOS_FUZZ_TARGET"] ?? ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTargets.run(target, data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

#if WORLDOS_FUZZING
typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: Callback) -> Int32

guard FuzzTargets.names.contains(target) else {
    FileHandle.standardError.write(Data("set WORLDOS_FUZZ_TARGET to one of: \(FuzzTargets.names.joined(separator: " "))\n".utf8))
    exit(64)
}
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(runDriver(&argc, &argv, fuzzOneInput))
#else
let arguments = CommandLine.arguments.dropFirst()
guard let name = arguments.first, FuzzTargets.names.contains(name) else {
    FileHandle.standardError.write(Data("usage: worldos-fuzz TARGET FILE...; targets: \(FuzzTargets.names.joined(separator: " "))\n".utf8))
    exit(64)
}
for path in arguments.dropFirst() {
    FuzzTargets.run(name, Array(FileManager.default.contents(atPath: path) ?? Data()))
    print("\(name) \(path): ok")
}
#endif
