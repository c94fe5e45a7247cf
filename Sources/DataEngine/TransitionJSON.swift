import Foundation
import JSONWriter
import Journal
import LoopCore
import StateGraph

/// A transition's JSON line: the text `AppendOnlyFile.encoder()` (JSONEncoder, sorted keys)
/// gives for it, made by the project's one JSON writer — the graph deltas, which are most of a
/// busy step's bytes, written straight into the line; the small rest (outcome, surprise,
/// events, semantics) through JSONEncoder as fragments, in the members' sorted order.
public enum TransitionJSON {
    public static func encode(_ t: Transition) throws -> Data {
        let encoder = AppendOnlyFile.encoder()
        var json = JSONWriter(reserving: 1024)
        func fragment(_ key: String, _ value: (some Encodable)?) throws {
            guard let value else { return }
            json.key(key)
            json.raw(try encoder.encode(value))
        }
        func delta(_ key: String, _ value: GraphDelta?) {
            guard let value else { return }
            json.key(key)
            value.write(json: &json)
        }
        json.beginObject()
        if let context = t.context { json.key("context"); json.string(context) }
        try fragment("events", t.events)
        json.key("frameHash"); json.string(t.frameHash)
        if let png = t.framePNG { json.key("framePNG"); json.string(png) }
        json.key("mode"); json.string(t.mode.rawValue)
        json.key("nodeCount"); json.int(t.nodeCount)
        delta("observationDelta", t.observationDelta)
        if let n = t.observedNodes { json.key("observedNodes"); json.int(n) }
        try fragment("outcome", t.outcome)
        if let picked = t.picked { json.key("picked"); json.string(picked) }
        delta("priorDelta", t.priorDelta)
        if let raced = t.racedEntries { json.key("racedEntries"); json.int(raced) }
        try fragment("semanticsAdded", t.semanticsAdded)
        try fragment("semanticsRemoved", t.semanticsRemoved)
        delta("stateDelta", t.stateDelta)
        json.key("step"); json.int(t.step)
        if let supervisor = t.supervisor { json.key("supervisor"); json.string(supervisor.rawValue) }
        try fragment("surprise", t.surprise)
        try fragment("time", t.time)
        json.endObject()
        return Data(json.bytes)
    }
}
