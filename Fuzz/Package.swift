// swift-tools-version: 6.1
import PackageDescription

// libFuzzer's driver for Clew's fuzz targets (Sources/ClewFuzzTargets in the package above). Built only
// by tools/fuzz.sh, with `-sanitize=fuzzer,address` and `-parse-as-library`: libFuzzer supplies `main`.
let package = Package(
    name: "ClewFuzz",
    dependencies: [.package(name: "Clew", path: "..")],
    targets: [
        .executableTarget(
            name: "clew-fuzz",
            dependencies: [.product(name: "ClewFuzzTargets", package: "Clew")]
        )
    ]
)
