/// GPIO as the supervisor sees it: chips and their lines, what a request asks for, an edge.
public enum GPIO {
    public enum Direction: String, Sendable { case input, output }
    public enum Bias: String, Sendable { case asIs = "as-is", disabled, pullUp = "pull-up", pullDown = "pull-down" }

    public struct Line: Equatable, Sendable {
        public var offset: Int
        public var name: String?
        public var consumer: String?
        public var direction: Direction
        public var activeLow: Bool
        public var bias: Bias
        public var used: Bool
        public init(offset: Int, name: String?, consumer: String? = nil, direction: Direction = .input, activeLow: Bool = false,
                    bias: Bias = .asIs, used: Bool = false) {
            self.offset = offset
            self.name = name
            self.consumer = consumer
            self.direction = direction
            self.activeLow = activeLow
            self.bias = bias
            self.used = used
        }
    }

    public struct Chip: Equatable, Sendable {
        /// Kernel name, such as `gpiochip0`.
        public var name: String
        /// The label the driver gave it (for gpio-sim, the bank's label).
        public var label: String
        public var path: String
        public var lines: [Line]
        public init(name: String, label: String, path: String, lines: [Line]) {
            self.name = name
            self.label = label
            self.path = path
            self.lines = lines
        }
    }

    public enum RequestKind: Sendable {
        case input
        case output(initial: Int32, safe: Int32)
        /// An input reporting rising and falling edges on the request's descriptor.
        case edges
    }

    /// One edge on a line, timestamped by the kernel (CLOCK_MONOTONIC for libgpiod 1.6).
    public struct Edge: Equatable, Sendable {
        public var rising: Bool
        public var nanoseconds: UInt64
        public init(rising: Bool, nanoseconds: UInt64) {
            self.rising = rising
            self.nanoseconds = nanoseconds
        }
    }
}
