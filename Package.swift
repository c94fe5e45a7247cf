// swift-tools-version: 6.1
import PackageDescription

// Targets read as the design map (../shared/DESIGN.md): the graph and the loop's protocols know
// nothing of C; the host adapter imports the C libraries; WorldOSTesting ships the manual clock
// and the test twins as siblings of the real stages.
// SHA-256 of every frame (Digest) and the rasterizer (Renderer) touch every pixel of a 1280×800
// panel each step: unoptimized they take ~200 ms a step, optimized ~10 ms.
let optimizedEvenInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]
//
// Every target declares every module it imports, not only the ones it needs transitively:
// SwiftPM rebuilds a target when a *declared* dependency changes, so an undeclared import once
// left `worldos` compiled against an old layout of a LoopCore struct (it crashed).

let package = Package(
    name: "WorldOS",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "worldos", targets: ["worldos"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // Ed25519 for the audit log's signed checkpoints.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // The service: its HTTP + WebSocket API, metrics in Prometheus's text format, logs.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries, found through pkg-config (installed by `make setup`).
        .systemLibrary(name: "CLibUSB", path: "Sources/C/CLibUSB", pkgConfig: "libusb-1.0",
                       providers: [.apt(["libusb-1.0-0-dev"])]),
        .systemLibrary(name: "CGPIOD", path: "Sources/C/CGPIOD", pkgConfig: "libgpiod",
                       providers: [.apt(["libgpiod-dev"])]),
        .systemLibrary(name: "CSerialPort", path: "Sources/C/CSerialPort", pkgConfig: "libserialport",
                       providers: [.apt(["libserialport-dev"])]),
        .systemLibrary(name: "CDRM", path: "Sources/C/CDRM", pkgConfig: "libdrm",
                       providers: [.apt(["libdrm-dev"])]),
        .systemLibrary(name: "CSeccomp", path: "Sources/C/CSeccomp", pkgConfig: "libseccomp",
                       providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/C/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/C/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CFreeType", path: "Sources/C/CFreeType", pkgConfig: "freetype2",
                       providers: [.apt(["libfreetype-dev"])]),
        // What Swift cannot import (variadic C functions, ioctl request macros, SCMP_* macros).
        .target(name: "CShim", path: "Sources/C/CShim"),

        // The system calls the project makes, wrapped once (Glibc + CShim only): errno triaged
        // (EINTR retried here and nowhere else), whole writes, procfs reads, the path resolver
        // every caller shares, object identity, the exact opener.
        .target(name: "SystemCalls", dependencies: ["CShim"]),

        // The one JSON encoder for bulk output (snapshots, trace deltas, the API): streamed
        // bytes, the text JSONEncoder gives with sorted keys. No Foundation.
        .target(name: "JSONWriter", swiftSettings: optimizedEvenInDebug),
        // The state graph: typed nodes and edges, partitions, deltas, snapshots. No C.
        .target(name: "StateGraph", dependencies: ["JSONWriter"]),
        // The loop's protocols, modes, clock, micro-steps and the macro step itself. No C.
        .target(name: "Digest", swiftSettings: optimizedEvenInDebug),
        .target(name: "LoopCore", dependencies: ["StateGraph", "Digest"]),
        // Append-only JSON-lines files (trace, audit log): whole-line writes, fsync, torn tails.
        .target(name: "Journal", dependencies: ["SystemCalls"]),
        // Strict YAML configuration (policies, benches): unknown keys rejected, file:line errors.
        .target(name: "Config", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Device profiles (Devices/*.yaml): what hardware is and what may be done to it.
        .target(name: "Devices", dependencies: ["Config"]),
        // Components, one target each.
        .target(name: "Observer", dependencies: ["StateGraph", "LoopCore", "CShim", "SystemCalls"]),
        .target(name: "Estimator", dependencies: ["StateGraph", "LoopCore"]),
        .target(name: "Scheduler", dependencies: ["StateGraph", "LoopCore"]),
        .target(name: "Executor", dependencies: ["StateGraph", "LoopCore"]),
        .target(name: "Guard", dependencies: ["StateGraph", "LoopCore", "Config", "Journal", "SystemCalls", .product(name: "Crypto", package: "swift-crypto")]),
        // PNG encode and decode, once (libpng's simplified API): the panel's frames, redacted copies.
        .target(name: "PNGCodec", dependencies: ["CPNG"]),
        // Text, once (FreeType): a TrueType face rasterized to anti-aliased glyphs, cached.
        .target(name: "Typeface", dependencies: ["CFreeType"], swiftSettings: optimizedEvenInDebug),
        .target(name: "Renderer", dependencies: ["StateGraph", "LoopCore", "PNGCodec", "Typeface"], swiftSettings: optimizedEvenInDebug),
        // What the supervisor needs from devices (a USB bus, a GPIO bank; their values and
        // errors), C-free: the host adapter's real devices and the test twins both conform.
        .target(name: "DevicePorts", dependencies: ["SystemCalls", "LoopCore"]),
        .target(name: "HostAdapter", dependencies: [
            "LoopCore", "DevicePorts", "CShim", "CLibUSB", "CGPIOD", "CSerialPort", "CDRM", "CSeccomp", "SystemCalls",
        ]),
        // Supervised programs: the seccomp filter, its helper process, and the mediator that
        // answers the calls the filter sends to the supervisor.
        .target(name: "Sandbox", dependencies: ["Guard", "LoopCore", "CSeccomp", "CShim", "SystemCalls", "Observer"]),
        .executableTarget(name: "worldos-sandbox", dependencies: ["Sandbox", "CShim"]),
        // MCAP (https://mcap.dev/spec): our own writer, reader and repair; zstd chunks.
        .target(name: "MCAP", dependencies: ["CZstd", "Journal", "SystemCalls"]),
        // Data engine: the recorder of aligned transitions.
        .target(name: "DataEngine", dependencies: ["StateGraph", "JSONWriter", "LoopCore", "Journal", "MCAP", "Config", "PNGCodec", "Digest"]),
        // The devices attached to this machine as their profiles claim them: found (serial
        // instruments by *IDN?, GPIO chips by label and line names), observed (their readings,
        // USB, GPIO edges), and the host a bench acts on, which routes device steps to them.
        .target(name: "Attached", dependencies: [
            "StateGraph", "LoopCore", "Observer", "Guard", "HostAdapter", "DevicePorts", "Config", "Devices", "SystemCalls",
        ]),
        // The panel on a screen: the frame sink that scans out over DRM/KMS beside the PNG, the
        // choice of card, connector and mode, and the display as graph nodes.
        .target(name: "Surface", dependencies: ["StateGraph", "LoopCore", "DevicePorts", "HostAdapter", "Renderer", "Guard", "SystemCalls"]),
        // Bench files (contexts, their tasks and programs) and the proposers that offer their
        // tasks and the actions people request.
        // Controllers (PID, bang-bang, curve) as bench contexts propose them; the guard holds
        // their actuators to the envelopes declared with them. Plans (set, wait-until, measure,
        // scan, repeat, checkpoints) as people submit them, checked whole by the guard first.
        .target(name: "Control", dependencies: ["Guard", "LoopCore", "StateGraph", "Config", "Digest", "Journal", "DataEngine"]),
        .target(name: "Benches", dependencies: ["StateGraph", "LoopCore", "Config", "Journal", "Control", "Guard"]),
        // The supervisor as a service: the one model its clients see and act through (graph,
        // panel, approvals, actions, audit, metrics), the local control socket with its peers'
        // identities, the API tokens, the service's configuration file and sd_notify.
        .target(name: "Service", dependencies: [
            "StateGraph", "LoopCore", "Guard", "Journal", "Benches", "Config", "JSONWriter", "SystemCalls", "Digest", "DataEngine",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The HTTP + WebSocket API over that model (Hummingbird), its OpenAPI description and
        // the web page the daemon serves.
        .target(name: "WebAPI", dependencies: [
            "Service", "StateGraph", "LoopCore", "Guard", "Benches", "JSONWriter",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], resources: [.copy("Web")]),
        // The learned half: the outcome predictor and dynamics model trained from recorded
        // traces (counts with backoff), their evaluation on held-out sessions, and the predictor
        // that stands in for the host while dreaming.
        .target(name: "Learning", dependencies: ["LoopCore", "StateGraph", "DataEngine", "Digest", "Journal", "PNGCodec", "Typeface"]),
        // Assembles the real stages into a supervisor and runs its loop. Nothing else lives here.
        .target(name: "Supervisor", dependencies: [
            "StateGraph", "LoopCore", "Observer", "Estimator", "Scheduler", "Executor", "Guard",
            "Renderer", "HostAdapter", "DataEngine", "Devices", "Journal", "Sandbox", "Attached", "Benches", "Surface", "Typeface", "DevicePorts",
            "Service", "WebAPI", "Learning", "Control",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Above the assembler: a recorded trace replayed through the real guard and stages, and
        // generated traces (tasks planned over the benches, run on the supervisor).
        .target(name: "Traces", dependencies: [
            "StateGraph", "LoopCore", "Estimator", "Scheduler", "Executor", "Guard", "Renderer", "DataEngine", "Devices",
            "Journal", "MCAP", "Attached", "Benches", "Supervisor", "SystemCalls", "Learning", "Control",
        ]),
        // Test twins: manual clock and fakes of every stage, siblings of the real ones.
        .target(name: "WorldOSTesting", dependencies: ["StateGraph", "LoopCore", "DevicePorts"]),

        .executableTarget(name: "worldos", dependencies: [
            "Supervisor", "Traces", "Benches", "LoopCore", "HostAdapter", "Guard", "MCAP", "DataEngine", "JSONWriter", "Journal", "StateGraph", "SystemCalls", "Service", "Learning", "Control", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "worldos-bench", dependencies: [
            "StateGraph", "LoopCore", "Observer", "HostAdapter", "DevicePorts", "Guard", "CShim", "Sandbox", "DataEngine", "Journal", "MCAP", "Renderer",
            "Supervisor", "WorldOSTesting", "Service", "SystemCalls", "Learning", "Estimator", "Traces", "Attached", "Control", "Devices",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Benchmarks/worldos-bench"),

        // Fuzz targets for every parser (`make fuzz`; their corpora replay in `make test`).
        .target(name: "FuzzTargets", dependencies: ["DataEngine", "Devices", "Guard", "HostAdapter", "DevicePorts", "Journal", "LoopCore", "MCAP", "Supervisor", "Benches", "Learning", "Control"],
                path: "Tests/Fuzz/Targets"),
        .executableTarget(name: "worldos-fuzz", dependencies: ["FuzzTargets"], path: "Tests/Fuzz/Main"),

        // What the sandbox tests run under the filter (raw system calls, racing threads).
        .executableTarget(name: "sandbox-probe", dependencies: ["CSeccomp"], path: "Tests/SandboxProbe"),

        .testTarget(name: "LearningTests", dependencies: ["Learning", "LoopCore", "StateGraph", "Executor", "Benches"]),
        .testTarget(name: "StateGraphTests", dependencies: ["StateGraph", "JSONWriter", "WorldOSTesting", "LoopCore"]),
        .testTarget(name: "ComponentTests", dependencies: [
            "LoopCore", "StateGraph", "Config", "Observer", "Estimator", "Scheduler", "Executor", "Guard",
            "Renderer", "HostAdapter", "DevicePorts", "DataEngine", "Devices", "WorldOSTesting", "Sandbox", "Journal", "MCAP", "CPNG", "PNGCodec", "CShim", "CLibUSB", "SystemCalls",
            "Typeface", "Service", "Control",
        ], exclude: ["Golden"]),
        // Device adapters on real drivers: run inside the hardware rig (Tests/Rig, `make rig`).
        // Outside it every test skips, saying so.
        .testTarget(name: "RigTests", dependencies: ["Attached", "SystemCalls", "CDRM", "HostAdapter", "DevicePorts", "Renderer", "LoopCore", "StateGraph", "Supervisor", "Devices", "WorldOSTesting", "Guard"]),
        // The service's doors on real sockets: the control socket, the HTTP + WebSocket API.
        .testTarget(name: "ServiceTests", dependencies: [
            "Service", "WebAPI", "Guard", "Journal", "LoopCore", "StateGraph", "SystemCalls", "WorldOSTesting",
        ]),
        // The assembled supervisor and the `worldos` binary itself (help text, graph, run).
        .testTarget(name: "SupervisorTests", dependencies: [
            "LoopCore", "StateGraph", "Estimator", "Executor", "Guard", "HostAdapter", "DevicePorts", "DataEngine", "Supervisor", "Devices", "WorldOSTesting", "MCAP",
            "FuzzTargets", "Journal", "Renderer", "Attached", "Benches", "Traces", "SystemCalls", "CShim", "Surface", "PNGCodec", "Service",
            "Learning", "Control",
        ], exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v6]
)
