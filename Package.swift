// swift-tools-version: 6.1
import CompilerPluginSupport
import PackageDescription

let package = Package(
    name: "Clew",
    // Linux only (Debian's LMDB and zstd, inotify, /proc, Glibc): no Apple platform is claimed.
    products: [
        .library(name: "ClewCore", targets: ["ClewCore"]),
        .library(name: "ClewLedger", targets: ["ClewLedger"]),
        .library(name: "ClewPostgres", targets: ["ClewPostgres"]),
        .library(name: "ClewModel", targets: ["ClewModel"]),
        .library(name: "ClewProjections", targets: ["ClewProjections"]),
        .library(name: "ClewEngine", targets: ["ClewEngine"]),
        .library(name: "ClewForensics", targets: ["ClewForensics"]),
        .library(name: "ClewReplay", targets: ["ClewReplay"]),
        .library(name: "ClewServer", targets: ["ClewServer"]),
        .library(name: "ClewBenchmarks", targets: ["ClewBenchmarks"]),
        .library(name: "ClewCLI", targets: ["ClewCLI"]),
        .library(name: "ClewFuzzTargets", targets: ["ClewFuzzTargets"]),
        .executable(name: "clew", targets: ["clew"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swiftlang/swift-syntax", from: "603.0.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Floor 1: C libraries from Debian (liblmdb-dev, libzstd-dev, libssl-dev), never vendored.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // OpenSSL's libcrypto (libssl-dev) for SHA-256 with its state inline: the ledger's hot hashes.
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // What every floor shares: the error model (exit and HTTP status per category) and hex digests.
        .target(name: "ClewCore"),
        // Floor 2: storage (bytes, not domain) and the domain vocabulary (no storage).
        .target(
            name: "ClewLedger",
            dependencies: [
                "ClewCore",
                "CLMDB",
                "CZstd",
                "CCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Floor 2: the log in PostgreSQL, shared by many hosts (each keeps an LMDB replica of it).
        .target(
            name: "ClewPostgres",
            dependencies: [
                "ClewLedger",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "ClewModel", dependencies: ["ClewCore", .product(name: "Crypto", package: "swift-crypto")]),
        // Floor 3: views, folded from the log (runs, chunk status, lineage, value index) and the projector.
        .target(
            name: "ClewProjections",
            dependencies: ["ClewCore", "ClewLedger", "ClewModel", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // `#traced { ctx in … }`: records each binding of a DSL closure (a compiler plugin, run at build time).
        .macro(
            name: "ClewMacros",
            dependencies: [
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
            ]
        ),
        // Floor 4: the engine (DSL, pipeline files, executor, command tasks, chunks, schedules).
        .target(
            name: "ClewEngine",
            dependencies: [
                "ClewMacros",
                "ClewCore",
                "ClewLedger",
                "ClewModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Floor 4: lineage, search, root cause, impact, five-question reports and audit exports.
        .target(
            name: "ClewForensics",
            dependencies: ["ClewCore", "ClewProjections", "ClewLedger", "ClewModel", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Floor 5: replay, divergence reports, inspection.
        .target(
            name: "ClewReplay",
            dependencies: ["ClewCore", "ClewEngine", "ClewProjections", "ClewLedger", "ClewModel", "CZstd", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Floor 6: the HTTP API, OpenLineage ingest, access control and the dashboard (clew serve).
        .target(
            name: "ClewServer",
            dependencies: [
                "ClewCore",
                "ClewReplay",
                "ClewForensics",
                "ClewEngine",
                "ClewProjections",
                "ClewLedger",
                "ClewModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Floor 6: the command line, as a library so a user's package can ship its pipelines with it.
        // The benchmarks (`clew bench …`): each figure next to the physical limit measured in the same run.
        // Kept out of the libraries they measure; they reach storage internals through `package` access.
        .target(
            name: "ClewBenchmarks",
            dependencies: [
                "ClewCore", "ClewServer", "ClewReplay", "ClewForensics", "ClewEngine", "ClewProjections", "ClewLedger", "ClewModel", "CLMDB",
                "ClewPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ClewCLI",
            dependencies: [
                "ClewBenchmarks",
                "ClewCore",
                "ClewServer",
                "ClewReplay",
                "ClewForensics",
                "ClewLedger",
                "ClewModel",
                "ClewProjections",
                "ClewEngine",
                "ClewPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "clew",
            dependencies: ["ClewCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Clew's parsers of outside input as fuzz targets: libFuzzer drives them from Fuzz/ (tools/fuzz.sh),
        // the regression test replays Fixtures/fuzz/ through them.
        .target(
            name: "ClewFuzzTargets",
            dependencies: ["ClewCLI", "ClewEngine", "ClewLedger", "ClewModel", "ClewProjections", "ClewReplay", "ClewServer"]
        ),
        // What the test targets share: one way to get a temporary ledger and an engine over it.
        .target(
            name: "ClewTestSupport",
            dependencies: [
                "ClewEngine", "ClewLedger", "ClewPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ClewTestSupport"),
        .testTarget(name: "ClewLedgerTests", dependencies: ["ClewCore", "ClewLedger", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "ClewModelTests", dependencies: ["ClewModel"]),
        .testTarget(
            name: "ClewPostgresTests",
            dependencies: [
                "ClewTestSupport", "ClewPostgres", "ClewLedger",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ClewProjectionsTests", dependencies: ["ClewTestSupport", "ClewProjections", "ClewEngine", "ClewLedger", "ClewModel", "ClewBenchmarks"]),
        .testTarget(name: "ClewEngineTests", dependencies: ["ClewTestSupport", "ClewEngine", "ClewLedger", "ClewModel"]),
        .testTarget(
            name: "ClewServerTests",
            dependencies: [
                "ClewTestSupport", "ClewCore", "ClewModel", "ClewServer", "ClewReplay", "ClewForensics", "ClewEngine", "ClewLedger", "ClewProjections",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
                "ClewFuzzTargets",
            ]
        ),
        .testTarget(name: "ClewForensicsTests", dependencies: ["ClewTestSupport", "ClewCore", "ClewForensics", "ClewProjections", "ClewEngine", "ClewLedger"]),
        .testTarget(name: "ClewReplayTests", dependencies: ["ClewTestSupport", "ClewReplay", "ClewEngine", "ClewProjections", "ClewLedger", "ClewModel"]),
        .testTarget(
            name: "ClewCLITests",
            dependencies: [
                "ClewCLI", "ClewBenchmarks", "ClewCore", "ClewServer", "ClewLedger", "ClewModel", "ClewProjections", "ClewTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
    ]
)

for target in package.targets where [.executable, .test, .regular].contains(target.type) {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    target.swiftSettings = settings
}
