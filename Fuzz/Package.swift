// swift-tools-version: 6.1
import PackageDescription

// libFuzzer's driver for Clew's fuzz targets (Sources/ClewFuzzTargets in the package above). Built only
// by tools/fuzz.sh: every module with AddressSanitizer and libFuzzer's coverage counters, and this one
// linked with libFuzzer, which supplies `main`. (`-sanitize=fuzzer` for every module would link
// libFuzzer's `main` into the macro plugin too, which then fails to link.)
let package = Package(
    name: "ClewFuzz",
    dependencies: [.package(name: "Clew", path: "..")],
    targets: [
        .executableTarget(
            name: "clew-fuzz",
            dependencies: [.product(name: "ClewFuzzTargets", package: "Clew")],
            swiftSettings: [.unsafeFlags(["-sanitize=fuzzer"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer"])]
        )
    ]
)
