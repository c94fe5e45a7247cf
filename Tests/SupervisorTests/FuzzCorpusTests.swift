import FuzzTargets
import Foundation
import XCTest

/// Every committed fuzz corpus (Tests/Fuzz/corpus/TARGET: seeds, and anything `make fuzz` found
/// worth keeping) replayed through its target without the fuzzer, so a crash once found stays
/// fixed. The firmware's corpus is replayed by its own harness under `make fuzz`.
final class FuzzCorpusTests: XCTestCase {
    func testEveryCorpusInput_runsThroughItsTarget() throws {
        let root = repositoryRoot.appendingPathComponent("Tests/Fuzz/corpus").path
        var inputs = 0
        for target in FuzzTargets.names {
            let names = try FileManager.default.contentsOfDirectory(atPath: root + "/" + target)
            XCTAssertFalse(names.isEmpty, "the \(target) corpus has no seed")
            for name in names.sorted() {
                FuzzTargets.run(target, Array(try Data(contentsOf: URL(fileURLWithPath: root + "/\(target)/\(name)"))))
                inputs += 1
            }
        }
        XCTAssertGreaterThan(inputs, FuzzTargets.names.count)
    }
}
