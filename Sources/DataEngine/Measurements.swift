import Foundation
import JSONWriter
import MCAP

/// One measurement a plan took: readings recorded under a series name, with the scan's point
/// beside them (`volts` 0.5) when a scan took it.
public struct Measurement: Sendable, Equatable {
    public var plan: String
    public var planID: String
    public var series: String
    /// Its place in the series (0, 1, …).
    public var index: Int
    public var point: [String: Double]
    public var readings: [String: Double]
    /// Loop time, nanoseconds.
    public var time: UInt64

    public init(plan: String, planID: String, series: String, index: Int, point: [String: Double], readings: [String: Double], time: UInt64) {
        (self.plan, self.planID, self.series, self.index, self.point, self.readings, self.time) = (plan, planID, series, index, point, readings, time)
    }

    /// As it is recorded on `/worldos/measurement`.
    public var json: [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("index"); w.int(index)
        w.key("plan"); w.string(plan)
        w.key("plan-id"); w.string(planID)
        w.key("point"); w.beginObject()
        for (k, v) in point.sorted(by: { $0.key < $1.key }) { w.key(k); w.double(v) }
        w.endObject()
        w.key("readings"); w.beginObject()
        for (k, v) in readings.sorted(by: { $0.key < $1.key }) { w.key(k); w.double(v) }
        w.endObject()
        w.key("series"); w.string(series)
        w.key("time"); w.int(time)
        w.endObject()
        return w.bytes
    }

    /// One recorded message back, or why it is not a measurement.
    public init(json bytes: [UInt8]) throws(MeasurementError) {
        struct Recorded: Decodable {
            var plan: String, planID: String, series: String, index: Int, point: [String: Double], readings: [String: Double], time: UInt64
            enum CodingKeys: String, CodingKey { case plan, planID = "plan-id", series, index, point, readings, time }
        }
        // JSONDecoder, not JSONSerialization: its doubles read back exactly as they were written.
        guard let r = try? JSONDecoder().decode(Recorded.self, from: Data(bytes)) else {
            throw MeasurementError("not a worldos.Measurement message (plan, plan-id, series, index, point, readings, time)")
        }
        self.init(plan: r.plan, planID: r.planID, series: r.series, index: r.index, point: r.point, readings: r.readings, time: r.time)
    }

    static let schema = #"{"type":"object","title":"worldos.Measurement","required":["plan","plan-id","series","index","point","readings","time"],"properties":{"plan":{"type":"string"},"plan-id":{"type":"string"},"series":{"type":"string"},"index":{"type":"integer"},"point":{"type":"object","additionalProperties":{"type":"number"}},"readings":{"type":"object","additionalProperties":{"type":"number"}},"time":{"type":"integer","description":"loop time, ns"}}}"#
}

public struct MeasurementError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where a plan leaves its measurements and the recorder takes them, at each transition, onto
/// their own MCAP topic (written through at once: a measurement is on disk within a step).
public final class MeasurementLog: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: [Measurement] = []
    public init() {}

    public func post(_ m: Measurement) {
        lock.lock()
        waiting.append(m)
        lock.unlock()
    }

    public func take() -> [Measurement] {
        lock.lock()
        defer { lock.unlock() }
        let all = waiting
        waiting = []
        return all
    }
}

/// Measurements read back from recorded traces (`worldos export --measurements`), and written as
/// CSV and Parquet: one row per measurement, the scan's point and the readings as columns.
public enum MeasurementExport {
    /// Every measurement on `/worldos/measurement` in `traces`, in order (of `plan` alone when given).
    public static func read(traces: [String], plan: String? = nil) throws -> [Measurement] {
        var found: [Measurement] = []
        for path in traces {
            let reader = try MCAPReader(path: path)
            let channels = Set(reader.channels.values.filter { $0.topic == "/worldos/measurement" }.map(\.id))
            for message in reader.messages where channels.contains(message.channel) {
                do {
                    let m = try Measurement(json: message.data)
                    if plan == nil || m.planID == plan || m.plan == plan { found.append(m) }
                } catch {
                    throw MeasurementError("\(path): message \(message.sequence) on /worldos/measurement: \(error)")
                }
            }
        }
        return found
    }

    /// `time_ns,plan,plan_id,series,index,` then the points' and the readings' names, sorted.
    public static func csv(_ measurements: [Measurement]) -> String {
        let points = Set(measurements.flatMap(\.point.keys)).sorted(), readings = Set(measurements.flatMap(\.readings.keys)).sorted()
        func cell(_ s: String) -> String { s.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        var lines = [(["time_ns", "plan", "plan_id", "series", "index"] + points + readings).map(cell).joined(separator: ",")]
        for m in measurements {
            lines.append(([String(m.time), m.plan, m.planID, m.series, String(m.index)].map(cell)
                          + points.map { number(m.point[$0]) } + readings.map { number(m.readings[$0]) }).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The same table as Parquet: the same columns, the points' and readings' empty cells null.
    public static func parquet(_ measurements: [Measurement]) throws -> [UInt8] {
        let points = Set(measurements.flatMap(\.point.keys)).sorted(), readings = Set(measurements.flatMap(\.readings.keys)).sorted()
        let columns: [ParquetTable.Column] = [
            .int64("time_ns", measurements.map { Int64(clamping: $0.time) }), .utf8("plan", measurements.map(\.plan)),
            .utf8("plan_id", measurements.map(\.planID)), .utf8("series", measurements.map(\.series)),
            .int64("index", measurements.map { Int64($0.index) }),
        ] + points.map { name in .double(name, measurements.map { $0.point[name] }) }
          + readings.map { name in .double(name, measurements.map { $0.readings[name] }) }
        return try ParquetTable(columns: columns).bytes()
    }

    /// The scans among them: per plan run and series, the measurements that carry one point
    /// parameter, as that parameter and its points in order.
    public static func scans(_ measurements: [Measurement]) -> [(planID: String, series: String, parameter: String, points: [Measurement])] {
        var order: [String] = [], groups: [String: [Measurement]] = [:]
        for m in measurements where m.point.count == 1 {
            let key = m.planID + " " + m.series
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(m)
        }
        return order.map { key in
            let g = groups[key]!
            return (g[0].planID, g[0].series, g[0].point.keys.first!, g)
        }
    }
}
