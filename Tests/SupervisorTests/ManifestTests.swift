import Foundation
import XCTest

/// SwiftPM rebuilds a target only when a declared dependency changes. A module imported but
/// reached only transitively once left `worldos` compiled against an old struct layout after an
/// incremental build (it crashed), so every import must be declared.
final class ManifestTests: XCTestCase {
    func testEveryTarget_declaresEveryModuleItImports() throws {
        let manifest = try String(contentsOf: repositoryRoot.appendingPathComponent("Package.swift"), encoding: .utf8)
        let outside: Set<String> = ["Foundation", "Glibc", "XCTest", "Dispatch", "Synchronization", "ArgumentParser", "Yams", "PackageDescription"]
        // A target's declaration runs to the next one's (its dependencies may span lines and hold
        // `.product(name:package:)` entries, whose module names count as declared).
        let declaration = try NSRegularExpression(pattern: #"\.(?:target|executableTarget|testTarget|systemLibrary)\(name: "([^"]+)""#)
        let quoted = try NSRegularExpression(pattern: #""([A-Za-z]+)""#)
        let importLine = try NSRegularExpression(pattern: #"^\s*(?:@_exported\s+)?import\s+([A-Za-z]+)\s*$"#, options: [.anchorsMatchLines])
        var checked = 0
        let targets = declaration.matches(in: manifest, range: NSRange(manifest.startIndex..., in: manifest))
        for (i, match) in targets.enumerated() {
            let name = String(manifest[Range(match.range(at: 1), in: manifest)!])
            let end = i + 1 < targets.count ? Range(targets[i + 1].range, in: manifest)!.lowerBound : manifest.endIndex
            let body = String(manifest[Range(match.range, in: manifest)!.upperBound..<end]).components(separatedBy: "path:")[0]
                .components(separatedBy: "swiftLanguageModes")[0]
            let declared = Set(quoted.matches(in: body, range: NSRange(body.startIndex..., in: body)).map { String(body[Range($0.range(at: 1), in: body)!]) })
            let directory = ["worldos-bench": "Benchmarks/worldos-bench", "CShim": "Sources/C/CShim"][name]
                ?? (FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent("Sources/\(name)").path) ? "Sources/\(name)" : "Tests/\(name)")
            guard let files = FileManager.default.enumerator(atPath: repositoryRoot.appendingPathComponent(directory).path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: repositoryRoot.appendingPathComponent("\(directory)/\(file)"), encoding: .utf8)
                for m in importLine.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let module = String(text[Range(m.range(at: 1), in: text)!])
                    guard !outside.contains(module), module != name else { continue }
                    XCTAssertTrue(declared.contains(module), "\(directory)/\(file) imports \(module), which target \(name) does not declare")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 50, "the check found the targets and their imports")
    }
}
