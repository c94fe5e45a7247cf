import CShim
import Foundation
import Glibc
import LoopCore
@testable import Observer
import StateGraph
import WorldOSTesting
import XCTest

final class SharedObjectsTests: XCTestCase {
    func testHoldAndRelease_keepPlacesAndCounts_likeADictionary() {
        var objects = SharedObjects()
        var model: [ObjectKey: Int] = [:]
        var random = SeededRandom(seed: 11)
        // Few keys over many operations: collisions, wrap-around and deletion by backward
        // shift all happen; kinds differ with the same numbers.
        let kinds: [ObjectKey.Kind] = [.socket, .regular, .pipe]
        let universe = (0..<300).map { (i: Int) -> ObjectKey in
            let shift: UInt64 = i % 2 == 0 ? 0 : 32
            return ObjectKey(kind: kinds[i % 3], a: UInt64(i / 3) << shift, b: UInt64(i % 7))
        }
        for step in 0..<40_000 {
            let key = universe[Int(random.next() % UInt64(universe.count))]
            if random.next() % 2 == 0 || model[key] == nil {
                let added = objects.hold(key) {
                    ProcCache.KeptObject(node: key.node(id: key.id, target: "t"), target: "t", netns: 0, socket: nil)
                }
                XCTAssertEqual(added, model[key] == nil, "step \(step)")
                model[key, default: 0] += 1
            } else {
                let place = objects.place(of: key)
                let freed = objects.release(key)
                model[key]! -= 1
                if model[key] == 0 {
                    model[key] = nil
                    XCTAssertEqual(freed, place, "step \(step): the place it left")
                } else {
                    XCTAssertNil(freed, "step \(step)")
                }
            }
            if step % 500 == 0 || step == 39_999 {
                XCTAssertEqual(objects.count, model.count)
                for (held, references) in model {
                    let place = objects.place(of: held)
                    XCTAssertEqual(place.map { objects.keys[$0] }, held, "step \(step)")
                    XCTAssertEqual(place.map { objects.kept[$0].node.id }, held.id)
                    XCTAssertEqual(objects.referenceCount(held), references)
                }
                for other in universe where model[other] == nil { XCTAssertNil(objects.place(of: other)) }
            }
        }
    }
}
