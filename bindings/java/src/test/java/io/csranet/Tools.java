package io.csranet;

import java.awt.image.BufferedImage;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;

/**
 * Helpers for the test script: {@code ppm IN.png OUT.ppm} writes a PNG as a binary PPM for the
 * C reference program; {@code loader} loads the native library the way the JVM was configured
 * to and prints where from (run in fresh JVMs to check each way of finding it).
 */
final class Tools {
    private Tools() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 3 && args[0].equals("ppm")) {
            BufferedImage img = ImageIO.read(new File(args[1]));
            if (img == null) {
                throw new IOException("cannot decode " + args[1]);
            }
            writePpm(img, Path.of(args[2]));
        } else if (args.length == 1 && args[0].equals("loader")) {
            String v = CsraModel.nativeVersion();
            try (CsraModel m = CsraModel.createDefault()) {
                System.out.println("loaded " + NativeLibrary.loadedFrom() + " version " + v + " classes "
                        + m.config().numClasses());
            }
        } else {
            System.err.println("usage: Tools ppm IN.png OUT.ppm | Tools loader");
            System.exit(2);
        }
    }

    static void writePpm(BufferedImage img, Path out) throws IOException {
        int w = img.getWidth();
        int h = img.getHeight();
        try (OutputStream o = Files.newOutputStream(out)) {
            o.write(("P6\n" + w + " " + h + "\n255\n").getBytes(StandardCharsets.US_ASCII));
            byte[] row = new byte[w * 3];
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int p = img.getRGB(x, y);
                    row[3 * x] = (byte) (p >> 16);
                    row[3 * x + 1] = (byte) (p >> 8);
                    row[3 * x + 2] = (byte) p;
                }
                o.write(row);
            }
        }
    }

    /** A binary PPM: {width, height} and the RGB bytes. */
    static final class Ppm {
        final int width;
        final int height;
        final byte[] rgb;

        Ppm(int width, int height, byte[] rgb) {
            this.width = width;
            this.height = height;
            this.rgb = rgb;
        }
    }

    static Ppm readPpm(Path path) throws IOException {
        byte[] all = Files.readAllBytes(path);
        int[] pos = {0};
        String magic = token(all, pos);
        int w = Integer.parseInt(token(all, pos));
        int h = Integer.parseInt(token(all, pos));
        int max = Integer.parseInt(token(all, pos));
        if (!magic.equals("P6") || max != 255) {
            throw new IOException(path + ": not an 8-bit binary PPM");
        }
        pos[0]++; // the single whitespace after maxval
        byte[] rgb = java.util.Arrays.copyOfRange(all, pos[0], pos[0] + w * h * 3);
        return new Ppm(w, h, rgb);
    }

    private static String token(byte[] b, int[] pos) {
        while (Character.isWhitespace(b[pos[0]])) {
            pos[0]++;
        }
        int s = pos[0];
        while (!Character.isWhitespace(b[pos[0]])) {
            pos[0]++;
        }
        return new String(b, s, pos[0] - s, StandardCharsets.US_ASCII);
    }

    /** The passes printed by {@code reference.c}: name -> instances. */
    static java.util.Map<String, List<Instance>> readReference(Path path) throws IOException {
        java.util.Map<String, List<Instance>> out = new java.util.LinkedHashMap<>();
        java.util.Map<String, Integer> counts = new java.util.HashMap<>();
        List<Instance> current = null;
        String name = null;
        for (String line : Files.readAllLines(path)) {
            String[] t = line.trim().split(" ");
            if (t[0].equals("pass")) {
                name = line.substring(5).trim();
                current = new ArrayList<>();
                out.put(name, current);
            } else if (t[0].equals("instances")) {
                counts.put(name, Integer.parseInt(t[1]));
            } else if (t[0].equals("inst")) {
                int n = Integer.parseInt(t[11]);
                float[] poly = new float[2 * n];
                for (int k = 0; k < 2 * n; k++) {
                    poly[k] = hex(t[12 + k]);
                }
                current.add(new Instance(Integer.parseInt(t[1]), Integer.parseInt(t[2]), hex(t[4]),
                        Integer.parseInt(t[3]), hex(t[5]), hex(t[6]), Integer.parseInt(t[7]), Integer.parseInt(t[8]),
                        Integer.parseInt(t[9]), Integer.parseInt(t[10]), poly));
            }
        }
        for (var e : out.entrySet()) {
            if (!Integer.valueOf(e.getValue().size()).equals(counts.get(e.getKey()))) {
                throw new IOException(path + ": pass " + e.getKey() + " lists " + e.getValue().size()
                        + " instances but says " + counts.get(e.getKey()));
            }
        }
        return out;
    }

    /** Parses C's "%a" output exactly. */
    static float hex(String s) {
        return (float) Double.parseDouble(s);
    }
}
