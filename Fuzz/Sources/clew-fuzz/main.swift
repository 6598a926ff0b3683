import ClewFuzzTargets
import Foundation

// libFuzzer's driver. Whichever `main` the link keeps — this file's (SwiftPM links executables
// through it), which hands over to `LLVMFuzzerRunDriver`, or libFuzzer's own — libFuzzer parses its
// flags and calls `LLVMFuzzerTestOneInput` for each input.

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The target this process fuzzes, from `CLEW_FUZZ_TARGET` (set by tools/fuzz.sh); exits naming the
/// choices when it is not one.
let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["CLEW_FUZZ_TARGET"] ?? ""
    guard let chosen = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        FileHandle.standardError.write(Data("clew-fuzz: CLEW_FUZZ_TARGET must be one of \(names); got '\(name)'\n".utf8))
        exit(2)
    }
    return chosen
}()

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    target.run(count == 0 ? Data() : Data(bytes: bytes!, count: count))
    return 0
}

_ = target
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(runDriver(&argc, &argv) { testOneInput($0, $1) })
