import Foundation

/// What clients ask of the recording while the supervisor runs: begin a new trace file, or mark
/// the present moment with a label. A client thread leaves a command and waits; the recorder
/// takes it on the loop's thread at its next transition — the one place the files are written —
/// and says where it landed. A command nobody took in time is withdrawn, so it never happens
/// later than its client was told.
public final class TraceControl: @unchecked Sendable {
    public enum Command: Sendable, Equatable {
        /// Close the current file (its summary written, complete) and go on in a new one.
        case newFile(by: String)
        /// A message on `/worldos/mark`: the label, who set it, at which step.
        case mark(label: String, by: String)
    }

    /// Where a command took effect: the file (its name in the run folder) and the step.
    public struct Done: Sendable, Equatable {
        public var file: String
        public var step: Int
        /// Loop time, nanoseconds.
        public var time: UInt64
        public init(file: String, step: Int, time: UInt64) { (self.file, self.step, self.time) = (file, step, time) }
    }

    private let condition = NSCondition()
    private var next = 0
    private var waiting: [(id: Int, command: Command)] = []
    private var taken: Set<Int> = []
    private var done: [Int: Result<Done, Failure>] = [:]

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public init() {}

    /// Leave `command` for the recorder and wait up to `timeout` for it to be done; nil when no
    /// transition was recorded in that time (the command is withdrawn: it will not happen). One
    /// the recorder has begun is waited for to its end, which is at most one file's close.
    public func submit(_ command: Command, timeout: Duration = .seconds(5)) -> Result<Done, Failure>? {
        condition.lock()
        defer { condition.unlock() }
        next += 1
        let id = next
        waiting.append((id, command))
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date().addingTimeInterval(seconds)
        while done[id] == nil {
            if taken.contains(id) {
                condition.wait()
            } else if !condition.wait(until: deadline), !taken.contains(id), done[id] == nil {
                break
            }
        }
        if let result = done.removeValue(forKey: id) { return result }
        waiting.removeAll { $0.id == id }
        return nil
    }

    /// The recorder's side: every command waiting, oldest first; each must be handed back to
    /// ``finished(_:_:)``, done or failed.
    func take() -> [(id: Int, command: Command)] {
        condition.lock()
        defer { condition.unlock() }
        let now = waiting
        waiting = []
        taken.formUnion(now.map(\.id))
        return now
    }

    func finished(_ id: Int, _ result: Result<Done, Failure>) {
        condition.lock()
        taken.remove(id)
        done[id] = result
        condition.broadcast()
        condition.unlock()
    }
}
