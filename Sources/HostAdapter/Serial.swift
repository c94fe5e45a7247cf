import CSerialPort
import DevicePorts
import Glibc
import SystemCalls

/// A serial port's settings. Plain data; ``SerialPort`` applies them.
public struct SerialSettings: Equatable, Sendable {
    public enum Parity: String, Sendable { case none, even, odd }
    public var baud: Int
    public var dataBits: Int
    public var parity: Parity
    public var stopBits: Int
    /// RTS/CTS hardware flow control.
    public var hardwareFlow: Bool

    public init(baud: Int = 115_200, dataBits: Int = 8, parity: Parity = .none, stopBits: Int = 1, hardwareFlow: Bool = false) {
        self.baud = baud
        self.dataBits = dataBits
        self.parity = parity
        self.stopBits = stopBits
        self.hardwareFlow = hardwareFlow
    }
}

/// A serial port found by libserialport, with its USB parent when it has one.
public struct SerialPortInfo: Equatable, Sendable {
    public var path: String
    public var description: String
    public var usbVendorID: UInt16?
    public var usbProductID: UInt16?
    public var usbSerial: String?

    public init(path: String, description: String, usbVendorID: UInt16? = nil, usbProductID: UInt16? = nil, usbSerial: String? = nil) {
        self.path = path
        self.description = description
        self.usbVendorID = usbVendorID
        self.usbProductID = usbProductID
        self.usbSerial = usbSerial
    }

    /// Every serial port libserialport finds (real ports under /sys/class/tty; pseudo-terminals
    /// are not listed — open them by path).
    public static func list() -> [SerialPortInfo] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        guard sp_list_ports(&list) == SP_OK, let list else { return [] }
        defer { sp_free_port_list(list) }
        var ports: [SerialPortInfo] = []
        var i = 0
        while let port = list[i] {
            var info = SerialPortInfo(path: String(cString: sp_get_port_name(port)),
                                      description: sp_get_port_description(port).map { String(cString: $0) } ?? "")

            if sp_get_port_transport(port) == SP_TRANSPORT_USB {
                var vid: Int32 = 0, pid: Int32 = 0
                if sp_get_port_usb_vid_pid(port, &vid, &pid) == SP_OK {
                    info.usbVendorID = UInt16(truncatingIfNeeded: vid)
                    info.usbProductID = UInt16(truncatingIfNeeded: pid)
                }
                info.usbSerial = sp_get_port_usb_serial(port).map { String(cString: $0) }
            }
            ports.append(info)
            i += 1
        }
        return ports.sorted { $0.path < $1.path }
    }
}

/// An open serial port: a real one through libserialport (sp_open/sp_close), a pseudo-terminal
/// through termios (libserialport 0.1.1 cannot open one). Either way I/O goes through the
/// port's descriptor, which the loop can poll; nothing reads on a hidden thread.
public final class SerialPort {
    public let path: String
    /// The descriptor to poll.
    public let descriptor: Int32
    private let port: OpaquePointer?
    /// Bytes read past the last terminator, kept for the next read.
    private var pending: [UInt8] = []

    public init(path: String, settings: SerialSettings = SerialSettings()) throws(DeviceError) {
        self.path = path
        if path.hasPrefix("/dev/pts/") || path.hasPrefix("/dev/ptmx") {
            port = nil
            descriptor = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK)
            guard descriptor >= 0 else { throw DeviceError(device: path, errno: errno, action: "open the pseudo-terminal") }
            do { try SerialPort.configure(descriptor, settings, path: path) } catch {
                close(descriptor)
                throw error
            }
        } else {
            var p: OpaquePointer?
            guard sp_get_port_by_name(path, &p) == SP_OK, let p else {
                throw DeviceError(device: path, message: "libserialport does not know this port", hint: "is it a serial device? list them with worldos graph")
            }
            guard sp_open(p, SP_MODE_READ_WRITE) == SP_OK else {
                let e = errno
                sp_free_port(p)
                throw DeviceError(device: path, errno: e, action: "open the serial port")
            }
            let parity: sp_parity = switch settings.parity { case .none: SP_PARITY_NONE; case .even: SP_PARITY_EVEN; case .odd: SP_PARITY_ODD }
            let ok = sp_set_baudrate(p, Int32(settings.baud)) == SP_OK && sp_set_bits(p, Int32(settings.dataBits)) == SP_OK
                && sp_set_parity(p, parity) == SP_OK && sp_set_stopbits(p, Int32(settings.stopBits)) == SP_OK
                && sp_set_flowcontrol(p, settings.hardwareFlow ? SP_FLOWCONTROL_RTSCTS : SP_FLOWCONTROL_NONE) == SP_OK
            var fd: Int32 = -1
            guard ok, sp_get_port_handle(p, &fd) == SP_OK else {
                sp_close(p)
                sp_free_port(p)
                throw DeviceError(device: path, message: "cannot apply \(settings)", hint: "check the port supports these settings")
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            port = p
            descriptor = fd
        }
    }

    deinit {
        if let port {
            sp_close(port)
            sp_free_port(port)
        } else {
            close(descriptor)
        }
    }

    static func configure(_ fd: Int32, _ s: SerialSettings, path: String) throws(DeviceError) {
        var t = termios()
        guard tcgetattr(fd, &t) == 0 else { throw DeviceError(device: path, errno: errno, action: "read the terminal settings") }
        cfmakeraw(&t)
        let speeds: [Int: speed_t] = [9600: speed_t(B9600), 19200: speed_t(B19200), 38400: speed_t(B38400), 57600: speed_t(B57600),
                                      115_200: speed_t(B115200), 230_400: speed_t(B230400), 460_800: speed_t(B460800), 921_600: speed_t(B921600)]
        guard let speed = speeds[s.baud] else {
            throw DeviceError(device: path, message: "unsupported baud rate \(s.baud)", hint: "use one of \(speeds.keys.sorted())")
        }
        cfsetspeed(&t, speed)
        t.c_cflag &= ~tcflag_t(CSIZE)
        t.c_cflag |= [5: tcflag_t(CS5), 6: tcflag_t(CS6), 7: tcflag_t(CS7), 8: tcflag_t(CS8)][s.dataBits] ?? tcflag_t(CS8)
        switch s.parity {
        case .none: t.c_cflag &= ~tcflag_t(PARENB)
        case .even: t.c_cflag |= tcflag_t(PARENB); t.c_cflag &= ~tcflag_t(PARODD)
        case .odd: t.c_cflag |= tcflag_t(PARENB | PARODD)
        }
        if s.stopBits == 2 { t.c_cflag |= tcflag_t(CSTOPB) } else { t.c_cflag &= ~tcflag_t(CSTOPB) }
        if s.hardwareFlow { t.c_cflag |= tcflag_t(CRTSCTS) } else { t.c_cflag &= ~tcflag_t(CRTSCTS) }
        t.c_cflag |= tcflag_t(CLOCAL | CREAD)
        guard tcsetattr(fd, TCSANOW, &t) == 0 else { throw DeviceError(device: path, errno: errno, action: "apply the terminal settings") }
    }

    /// Write every byte (waiting for the port to drain when it is full).
    public func write(_ bytes: [UInt8]) throws(DeviceError) {
        let fd = descriptor
        let failed = Syscall.writeAll(fd, bytes) {
            var p = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
            _ = Syscall.poll(&p, milliseconds: 1000)
        }
        if let failed { throw DeviceError(device: path, errno: failed.code, action: "write") }
    }

    public func write(_ text: String) throws(DeviceError) { try write(Array(text.utf8)) }

    /// Read until `terminator` (returned without it) or until `timeoutMilliseconds` pass with the
    /// terminator not seen; then ``SerialTimeout`` carries what did arrive, which is the classic
    /// sign of a wrong terminator.
    public func read(until terminator: [UInt8] = [0x0A], timeoutMilliseconds: Int) throws -> [UInt8] {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let end = Int64(deadline.tv_sec) * 1000 + Int64(deadline.tv_nsec) / 1_000_000 + Int64(timeoutMilliseconds)
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            if let range = SerialPort.find(terminator, in: pending) {
                let line = Array(pending[..<range.lowerBound])
                pending.removeSubrange(..<range.upperBound)
                return line
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let left = end - (Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
            guard left > 0 else { throw SerialTimeout(device: path, received: pending, timeoutMilliseconds: timeoutMilliseconds) }
            var p = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
            switch Syscall.poll(&p, milliseconds: Int32(clamping: left)) {
            case .failure(let e): throw DeviceError(device: path, errno: e.code, action: "wait for data")
            case .success(0): continue
            case .success: break
            }
            let n: Int
            switch buffer.withUnsafeMutableBytes({ b in Syscall.retrying { Glibc.read(descriptor, b.baseAddress, b.count) } }) {
            case .success(let got): n = got
            case .failure(let e) where e.wouldBlock: continue
            case .failure(let e): throw DeviceError(device: path, errno: e.code, action: "read")
            }
            if n == 0 { throw DeviceError(device: path, message: "the other end hung up", hint: "is the device still attached?") }
            pending += buffer.prefix(n)
        }
    }

    /// A query on this line went unanswered in time; its answer may still arrive (see
    /// ``SCPIInstrument/resynchronize()``).
    public var lateReplyPossible = false

    /// Discard what has arrived and not been read (tcflush of input), and what this object held back.
    public func discardInput() {
        pending = []
        tcflush(descriptor, TCIFLUSH)
    }

    /// Discard what is buffered in both directions (tcflush), and what this object held back.
    public func flush() {
        pending = []
        tcflush(descriptor, TCIOFLUSH)
    }

    /// Send a break (tcsendbreak).
    public func sendBreak() throws(DeviceError) {
        guard tcsendbreak(descriptor, 0) == 0 else { throw DeviceError(device: path, errno: errno, action: "send a break") }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) {
            return i..<(i + needle.count)
        }
        return nil
    }
}

/// A read timed out before its terminator arrived.
public struct SerialTimeout: Error, CustomStringConvertible {
    public var device: String
    /// What did arrive: a reply without the expected terminator means the terminator is wrong.
    public var received: [UInt8]
    public var timeoutMilliseconds: Int
    public var description: String {
        received.isEmpty
            ? "\(device): no reply within \(timeoutMilliseconds) ms (is the device powered, and the baud rate right?)"
            : "\(device): \(received.count) bytes arrived but no terminator within \(timeoutMilliseconds) ms (\"\(String(decoding: received, as: UTF8.self))\"; check the terminator setting)"
    }
}
