#!/usr/bin/perl
# fs-bench-create.pl DIR N [WINDOW]: creates N empty files in DIR, each followed by a stat of it (the
# create+stat pair of bench/fs-bench.sh's scale workload), in one process so that the figure is the
# filesystem's and not fork's. Prints the seconds the last WINDOW (default 1000) pairs took: the
# cost of a create+stat in a directory that already holds about N files.
use strict;
use warnings;
use Fcntl qw(O_CREAT O_EXCL O_WRONLY);
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

my ($dir, $n, $window) = @ARGV;
die "usage: $0 DIR N [WINDOW]\n" unless defined $n && $n =~ /^\d+$/;
$window = 1000 unless defined $window;
$window = $n if $window > $n;
my $start;
for my $i (1 .. $n) {
    $start = clock_gettime(CLOCK_MONOTONIC) if $i == $n - $window + 1;
    my $path = sprintf "%s/file-%07d", $dir, $i;
    sysopen(my $fh, $path, O_CREAT | O_EXCL | O_WRONLY, 0644) or die "create $path: $!\n";
    close $fh or die "close $path: $!\n";
    my @st = stat $path or die "stat $path: $!\n";
}
printf "%.6f\n", clock_gettime(CLOCK_MONOTONIC) - $start;
