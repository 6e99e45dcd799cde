#!/usr/bin/env python3
# -*- coding: utf-8 -*-

#
# SPDX-License-Identifier: GPL-3.0
#
# GNU Radio Python Flow Graph
# Title: Zak-OTFS link through a channel model
# Author: zakotfs
# Description: Zak-OTFS transmitter -> channel model -> Zak-OTFS receiver
# GNU Radio version: 3.10.5.1

from gnuradio import blocks
from gnuradio import channels
from gnuradio.filter import firdes
from gnuradio import gr
from gnuradio.fft import window
import sys
import signal
from argparse import ArgumentParser
from gnuradio.eng_arg import eng_float, intx
from gnuradio import eng_notation
from gr_zakotfs import zakotfs_rx
from gr_zakotfs import zakotfs_tx




class tx_channel_rx(gr.top_block):

    def __init__(self, preset='demo', frames=20, noise=0.05, cfo=(1e-5), backend='auto', samples='/tmp/zakotfs_channel.cfile', bits='/tmp/zakotfs_bits.u8'):
        gr.top_block.__init__(self, "Zak-OTFS link through a channel model", catch_exceptions=True)

        ##################################################
        # Parameters
        ##################################################
        self.preset = preset
        self.frames = frames
        self.noise = noise
        self.cfo = cfo
        self.backend = backend
        self.samples = samples
        self.bits = bits

        ##################################################
        # Blocks
        ##################################################

        self.zakotfs_tx_0 = zakotfs_tx(preset=preset, frames=frames, seed=0, grid='', bandwidth=0, modulation='')
        self.zakotfs_rx_0 = zakotfs_rx(preset=preset, backend=backend, estimator="accurate", max_doppler_hz=1000.0, cfo_offset_hz=0.0, sample_clock_ppm=0.0, cfo_correction=True, dc_removal=True, grid='', bandwidth=0, modulation='')
        self.channels_channel_model_0 = channels.channel_model(
            noise_voltage=noise,
            frequency_offset=cfo,
            epsilon=1.0,
            taps=[1.0, 0.3j, 0.1],
            noise_seed=1,
            block_tags=False)
        self.blocks_message_debug_0 = blocks.message_debug(False)
        self.blocks_file_sink_samples = blocks.file_sink(gr.sizeof_gr_complex*1, samples, False)
        self.blocks_file_sink_samples.set_unbuffered(False)
        self.blocks_file_sink_bits = blocks.file_sink(gr.sizeof_char*1, bits, False)
        self.blocks_file_sink_bits.set_unbuffered(False)


        ##################################################
        # Connections
        ##################################################
        self.msg_connect((self.zakotfs_rx_0, 'pdus'), (self.blocks_message_debug_0, 'print'))
        self.connect((self.channels_channel_model_0, 0), (self.blocks_file_sink_samples, 0))
        self.connect((self.channels_channel_model_0, 0), (self.zakotfs_rx_0, 0))
        self.connect((self.zakotfs_rx_0, 0), (self.blocks_file_sink_bits, 0))
        self.connect((self.zakotfs_tx_0, 0), (self.channels_channel_model_0, 0))


    def get_preset(self):
        return self.preset

    def set_preset(self, preset):
        self.preset = preset

    def get_frames(self):
        return self.frames

    def set_frames(self, frames):
        self.frames = frames

    def get_noise(self):
        return self.noise

    def set_noise(self, noise):
        self.noise = noise
        self.channels_channel_model_0.set_noise_voltage(self.noise)

    def get_cfo(self):
        return self.cfo

    def set_cfo(self, cfo):
        self.cfo = cfo
        self.channels_channel_model_0.set_frequency_offset(self.cfo)

    def get_backend(self):
        return self.backend

    def set_backend(self, backend):
        self.backend = backend

    def get_samples(self):
        return self.samples

    def set_samples(self, samples):
        self.samples = samples
        self.blocks_file_sink_samples.open(self.samples)

    def get_bits(self):
        return self.bits

    def set_bits(self, bits):
        self.bits = bits
        self.blocks_file_sink_bits.open(self.bits)



def argument_parser():
    description = 'Zak-OTFS transmitter -> channel model -> Zak-OTFS receiver'
    parser = ArgumentParser(description=description)
    parser.add_argument(
        "--preset", dest="preset", type=str, default='demo',
        help="Set Preset [default=%(default)r]")
    parser.add_argument(
        "--frames", dest="frames", type=intx, default=20,
        help="Set Frames [default=%(default)r]")
    parser.add_argument(
        "--noise", dest="noise", type=eng_float, default=eng_notation.num_to_str(float(0.05)),
        help="Set Noise voltage [default=%(default)r]")
    parser.add_argument(
        "--cfo", dest="cfo", type=eng_float, default=eng_notation.num_to_str(float((1e-5))),
        help="Set Carrier offset (normalised to the sample rate) [default=%(default)r]")
    parser.add_argument(
        "--backend", dest="backend", type=str, default='auto',
        help="Set Backend [default=%(default)r]")
    parser.add_argument(
        "--samples", dest="samples", type=str, default='/tmp/zakotfs_channel.cfile',
        help="Set Channel output file (complex64) [default=%(default)r]")
    parser.add_argument(
        "--bits", dest="bits", type=str, default='/tmp/zakotfs_bits.u8',
        help="Set Decoded bits file (one a byte) [default=%(default)r]")
    return parser


def main(top_block_cls=tx_channel_rx, options=None):
    if options is None:
        options = argument_parser().parse_args()
    tb = top_block_cls(preset=options.preset, frames=options.frames, noise=options.noise, cfo=options.cfo, backend=options.backend, samples=options.samples, bits=options.bits)

    def sig_handler(sig=None, frame=None):
        tb.stop()
        tb.wait()

        sys.exit(0)

    signal.signal(signal.SIGINT, sig_handler)
    signal.signal(signal.SIGTERM, sig_handler)

    tb.start()

    tb.wait()


if __name__ == '__main__':
    main()
